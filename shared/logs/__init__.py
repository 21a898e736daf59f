"""Run logs: container reader → run reader → typed log events → masking → writers, and cursors."""
