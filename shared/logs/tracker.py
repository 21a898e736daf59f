"""What a client received, kept by the writer: every event written updates it, so a resume token
(see `shared.logs.tokens`) names exactly what went out before it."""

from __future__ import annotations

from shared.logs.cursor import Cursor, timestamp_ns
from shared.logs.events import LogLines
from shared.logs.line_cursors import ActiveEncoder, native_rows
from shared.logs.stamps import stamps_ns
from shared.logs.tokens import (
    Binding,
    ResumePoint,
    attempt_key,
    encode_active,
    encode_stable,
    notice_key,
)


class Tracker:
    def __init__(self, binding: Binding, start: ResumePoint | None = None) -> None:
        self.binding = binding
        self.done: set[int] = set(start.done) if start else set()
        self.active: dict[int, tuple[int, Cursor]] = dict(start.active) if start else {}
        self._pods: dict[str, int] = {}
        self._stable: tuple[str, int] | None = None
        self.stable_changed = True  # since the last `line_prefix`

    def _pod(self, pod: str) -> int:
        value = self._pods.get(pod)
        if value is None:
            value = self._pods[pod] = attempt_key(pod)
        return value

    def advance(self, pod: str, index: int, cursor: Cursor) -> None:
        """The container at step `index` of `pod` was delivered up to `cursor`."""
        if pod and index >= 0 and cursor.started:
            self.active[self._pod(pod)] = (index, cursor)

    def line(self, pod: str, index: int, timestamp: str | bytes) -> None:
        """One more whole line stamped `timestamp` went out (a line without one moves nothing)."""
        if not pod or not timestamp or index < 0:
            return
        try:
            ns = timestamp_ns(timestamp)
        except ValueError:
            return
        key = self._pod(pod)
        entry = self.active.get(key)
        self.active[key] = (index, Cursor(ns, 1) if entry is None or entry[0] != index else entry[1].after(ns))

    def line_cursors(self, pod: str, index: int, stamps: list[bytes], end: Cursor, zoned: bool = True) -> list[bytes]:
        """Moves past lines stamped `stamps` (the last one ending at `end`; `zoned=False`: each
        without its final `Z`); returns the active part of the token after each (base64url
        bytes; see `token`)."""
        _, crc = self.stable()
        if not pod or index < 0 or not end.started:
            return [encode_active(self.active, crc).encode()] * len(stamps)
        _, _, encoder, (ns, same) = self._move(pod, index, end, crc)
        parts = self._moved(encoder, stamps[:-1], zoned, ns, same) if len(stamps) > 1 else []
        parts.append(encoder.text(end.ns, end.same, end.piece))
        return parts

    def _move(
        self, pod: str, index: int, end: Cursor, crc: int
    ) -> tuple[int, tuple[int, Cursor] | None, ActiveEncoder, tuple[int, int]]:
        """Sets the attempt's entry to (`index`, `end`); returns its key, the entry it had, the
        encoder of the active parts over the lines between, and where those lines start from
        (ns, lines sharing it; (-1, 0) for a step not begun)."""
        key = self._pod(pod)
        entry = self.active.get(key)
        start = (entry[1].ns, entry[1].same) if entry is not None and entry[0] == index else (-1, 0)
        self.active[key] = (index, end)
        return key, entry, ActiveEncoder(self.active, key, crc), start

    def rows(self, event: LogLines, template: tuple[bytes | int, ...], json: bool) -> bytes | None:
        """`event`'s lines laid out by `template` (bytes, and `STAMP`, `CONTENT`, `PART` of
        `shared.logs.line_cursors`), the cursor after each line as its `PART`, in one pass of the
        compiled `shared.logs._rows`; moves past the lines like `line_cursors`. None, with nothing
        moved, where the Python path has to do it: no compiled module, or a batch it leaves to
        Python (`json`: a line whose content is not its own JSON string)."""
        end = event.cursor
        if native_rows is None or not event.stamped or not event.pod or event.index < 0 or not end.started:
            return None
        _, crc = self.stable()
        key, entry, encoder, (ns, same) = self._move(event.pod, event.index, end, crc)
        out = None
        try:
            out = native_rows(
                event.data, template, encoder.head, encoder.tail, crc, ns, same, end.ns, end.same, end.piece, json
            )
        finally:
            if out is None:  # as it was (also on an error): the Python path moves past the lines itself
                if entry is None:
                    del self.active[key]
                else:
                    self.active[key] = entry
        return out

    @staticmethod
    def _moved(encoder: ActiveEncoder, stamps: list[bytes], zoned: bool, ns: int, same: int) -> list[bytes]:
        """The active parts after each of `stamps`, from the entry at (`ns`, `same`)."""
        stamped = stamps_ns(stamps, zoned)
        if -1 not in stamped and len(set(stamped)) == len(stamped) and stamped[0] != ns:
            counts = [1] * len(stamped)  # the usual case: every line has a timestamp of its own
        else:
            counts = []
            for i, value in enumerate(stamped):
                if value >= 0:  # a line without a timestamp moves nothing
                    same = same + 1 if value == ns else 1
                    ns = value
                stamped[i] = ns
                counts.append(same)
        return encoder.texts(stamped, counts)

    def attempt_done(self, pod: str) -> None:
        key = self._pod(pod)
        self.active.pop(key, None)
        if key not in self.done:
            self.done.add(key)
            self._stable = None

    def notice(self, key: str) -> None:
        if key:
            value = notice_key(key)
            if value not in self.done:
                self.done.add(value)
                self._stable = None

    def stable(self) -> tuple[str, int]:
        if self._stable is None:
            self._stable = encode_stable(self.binding, self.done)
            self.stable_changed = True
        return self._stable

    def token(self) -> str:
        text, crc = self.stable()
        return f"{text}.{encode_active(self.active, crc)}"

    def line_prefix(self) -> str:
        """For `cursors=true` text: the full token after a change of the stable part, else
        `.<active>` (the client glues it to the stable part it last saw)."""
        return self.lead().decode() + encode_active(self.active, self.stable()[1])

    def lead(self) -> bytes:
        """What goes before a `cursors=true` line's active part: the stable part and a dot after
        the stable part changed, else the dot alone."""
        text, _ = self.stable()
        if self.stable_changed:
            self.stable_changed = False
            return text.encode() + b"."
        return b"."
