"""Kubernetes access: the narrow API adapter and Kubernetes naming rules. Nothing here knows Tekton."""
