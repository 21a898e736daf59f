"""How Knative runs the image, as podman/docker flags (service.yaml's securityContext and its
/tmp emptyDir), for the image tests and the cold-start measurement."""

from __future__ import annotations

RUN_FLAGS = [
    "--read-only",
    "--read-only-tmpfs=false",  # podman's extra tmpfs mounts (/run, /var/tmp) are not in the pod
    "--tmpfs",
    "/tmp",  # noqa: S108 (the emptyDir's mount point in the container, not a file made here)
    "--cap-drop=ALL",
    "--security-opt",
    "no-new-privileges",
]
# The Dockerfile's USER: runAsNonRoot needs it numeric.
IMAGE_UID = "10001:10001"
