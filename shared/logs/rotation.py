"""What to do about the kubelet's log rotation where a followed container's log is read.

kubelet 1.20's follow of a log file that it rotates can stay on the rotated file or skip one
(`shared/logs/file_starts.py` watches a live follow for both). When a follow ends, the
container may have written on to a file the follow never read: a read without `follow`
afterwards serves the current file (`may_have_missed_lines` says when that is worth its
request), and a gap between the follow's last line and that file's first is said.
"""

from __future__ import annotations

from shared.kube.client import Kube, KubeError
from shared.logs.cursor import Cursor, timestamp_ns
from shared.runs.model import Container

# The kubelet rotates at containerLogMaxSize (10 MiB by default; 1 MiB is a sensible floor).
ROTATION_BYTES = 1024 * 1024
# A container that finished this long after the last line the follow delivered.
LATE_END_NS = 2_000_000_000
HEAD_BYTES = 64  # an RFC 3339 timestamp (at most 35 bytes), its space and some content


def may_have_missed_lines(current: Container | None, cursor: Cursor, read_bytes: int) -> bool:
    if read_bytes >= ROTATION_BYTES:
        return True
    if current is None or current.state != "terminated" or not current.finished_at:
        return False
    try:
        finished = timestamp_ns(current.finished_at)
    except ValueError:
        return False
    return finished - cursor.ns > LATE_END_NS


def current_file_head(kube: Kube, namespace: str, pod: str, container: str) -> bytes:
    """The first bytes of the container's current log file (b"" when they cannot be read)."""
    try:
        response = kube.pod_log(
            namespace, pod, container, follow=False, timestamps=True, read_timeout=5.0, limit_bytes=HEAD_BYTES
        )
    except KubeError:
        return b""
    try:
        return response.read(HEAD_BYTES)
    except Exception:  # a cut connection surfaces as urllib3/OSError types
        return b""
    finally:
        response.close()
        response.release_conn()
