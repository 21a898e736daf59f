"""When a followed container's log is worth one more read after the follow ended.

kubelet 1.20's follow of a container whose log file it rotates stays on the old file: what the
container writes to the new one after that never reaches the follower, and `kubectl logs -f`
loses it too. A read without `follow` afterwards serves the current file. It costs one request,
so it is made only where a rotation is possible or the follow plainly ended early.
"""

from __future__ import annotations

from shared.logs.cursor import Cursor, timestamp_ns
from shared.runs.model import Container

# The kubelet rotates at containerLogMaxSize (10 MiB by default; 1 MiB is a sensible floor).
ROTATION_BYTES = 1024 * 1024
# A container that finished this long after the last line the follow delivered.
LATE_END_NS = 2_000_000_000


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
