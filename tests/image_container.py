"""The built image as a container started the way Knative starts it, with podman (or docker).

Knative's pod for a function, as service.yaml asks for it: read-only root file system with an
emptyDir on /tmp and nothing else writable, all capabilities dropped, no privilege escalation,
the runtime's default seccomp profile, a non-root uid, PORT set. Here on host networking, so the
container reaches the sandbox's loopback-only apiserver, with a kubeconfig mounted read-only.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import yaml

from image import build, knative
from tests.image import image_ref
from tests.sandbox.cluster import Cluster
from tests.support import PASSWORD, USER, Listener
from tests.test_manifests import ksvc_literal_env

IMAGE_UID = knative.IMAGE_UID
KUBE_DIR = "/var/run/tekton-pipeline-listener"
# HOME=/tmp in the image; what gunicorn logs when it cannot make or start it.
CONTROL_SOCKET = "/tmp/.gunicorn/gunicorn.ctl"
CONTROL_TROUBLE = re.compile(r"control (server error|socket)", re.IGNORECASE)
# What a clean container log never holds (gunicorn tags its own errors `[ERROR]`).
TROUBLE = re.compile(r"error|exception|traceback|errno|critical|warning", re.IGNORECASE)


def engine(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [build.engine(), *args], env=build.engine_env(), capture_output=True, text=True, check=check, timeout=timeout
    )


def knative_run_flags() -> list[str]:
    # On host networking: the sandbox apiserver listens on loopback only.
    return [*knative.run_flags(build.engine()), "--network", "host"]


def trouble(log: str) -> list[str]:
    return [line for line in log.splitlines() if TROUBLE.search(line)]


def mount_kubeconfig(cluster: Cluster, into: Path) -> Path:
    """The listener's kubeconfig and the cluster CA in a directory the image's uid can read."""
    into.mkdir(mode=0o755, parents=True)
    config = yaml.safe_load(cluster.write_kubeconfig(into / "config", cluster.listener).read_text())
    config["clusters"][0]["cluster"]["certificate-authority"] = f"{KUBE_DIR}/ca.crt"
    (into / "config").write_text(yaml.safe_dump(config))
    (into / "ca.crt").write_bytes(Path(cluster.ca_file).read_bytes())
    for path in (into / "config", into / "ca.crt"):
        path.chmod(0o644)  # a test-only token; the container's uid is not the file's owner
    return into


class ImageContainer(Listener):
    """One function of the image in a container; the Listener client methods talk to it."""

    def __init__(self, cluster: Cluster, workdir: Path, function: str, user: str = IMAGE_UID, **env: str) -> None:
        super().__init__(cluster)
        self.name = f"tpl-test-{function}-{uuid.uuid4().hex[:8]}"
        kube = mount_kubeconfig(cluster, workdir / self.name)
        variables = {
            **ksvc_literal_env(function),
            "PORT": str(self.port),
            "KUBECONFIG": f"{KUBE_DIR}/config",
            "AUTH_USERNAME": USER,
            "AUTH_PASSWORD": PASSWORD,
            **env,
        }
        self.command = ["create", "--name", self.name, *knative_run_flags(), "--user", user]
        self.command += ["-v", f"{kube}:{KUBE_DIR}:ro"]
        for key, value in variables.items():
            self.command += ["-e", f"{key}={value}"]
        self.command.append(image_ref())
        self.cold_start_seconds: float | None = None
        self.stop_seconds: float | None = None

    def start(self, timeout: float = 60.0) -> ImageContainer:
        engine(*self.command)
        began = time.monotonic()
        super().start(timeout)
        self.cold_start_seconds = time.monotonic() - began
        self.await_control_server(timeout)
        return self

    def await_control_server(self, timeout: float) -> None:
        """gunicorn's arbiter starts its control server in a thread after the workers answer: an
        error at start may still be on its way until the socket listens or the log says why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if CONTROL_TROUBLE.search(self.log()):
                return
            if engine("exec", self.name, "test", "-S", CONTROL_SOCKET, check=False).returncode == 0:
                return
            time.sleep(0.05)  # neither a socket nor a log line can be waited on from here
        raise TimeoutError(f"{self.name}: no control socket and no word why: {self.log()}")

    def launch(self) -> None:
        engine("start", self.name)

    def check_running(self) -> None:
        state = self.state()
        if not state["Running"]:
            raise RuntimeError(f"container exited {state['ExitCode']}: {self.log()}")

    def state(self) -> dict:
        return json.loads(engine("inspect", "--format", "{{json .State}}", self.name).stdout)

    def log(self) -> str:
        result = engine("logs", self.name, check=False)
        return result.stdout + result.stderr

    def stop(self, sig: object = None, timeout: float = 10.0) -> int:
        """`podman stop -t <timeout>`: SIGTERM, then SIGKILL after the timeout. The exit code."""
        began = time.monotonic()
        engine("stop", "-t", str(int(timeout)), self.name, timeout=timeout + 30)
        self.stop_seconds = time.monotonic() - began
        return int(self.state()["ExitCode"])

    def remove(self) -> None:
        engine("rm", "--force", self.name, check=False)

    def __exit__(self, *exc: object) -> None:
        self.remove()
