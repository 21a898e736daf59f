"""Tekton access library shared by every function of tekton-pipeline-listener."""
