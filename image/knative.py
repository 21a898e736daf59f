"""How Knative runs the image, as podman/docker flags (service.yaml's securityContext and its
/tmp emptyDir), for the image tests and the cold-start measurement."""

from __future__ import annotations

# The Dockerfile's USER: runAsNonRoot needs it numeric.
IMAGE_UID = "10001:10001"


def run_flags(engine: str) -> list[str]:
    """Read-only root with only /tmp writable, no capabilities, no new privileges; the engine's
    default seccomp profile is the RuntimeDefault of a kubelet."""
    flags = ["--read-only"]
    if engine == "podman":
        flags.append("--read-only-tmpfs=false")  # podman's extra tmpfs mounts (/run, /var/tmp) are not in the pod
    # /tmp: the emptyDir's mount point in the container, not a file made here.
    flags += ["--tmpfs", "/tmp", "--cap-drop=ALL", "--security-opt", "no-new-privileges"]  # noqa: S108
    return flags
