"""A streaming HTTP response body read in large reads, whatever its chunk framing.

With `follow=true` a kubelet flushes after every log line and the apiserver passes each flush
on, so a log arrives as one HTTP chunk per line; reading it chunk by chunk through the HTTP
client costs more than the line itself. Here the chunked framing is taken apart with bytes
operations over whatever the socket has ready (up to `READ_SIZE`), so a read returns every
line that arrived, in one piece, and blocks only when nothing has.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from typing import Any

READ_SIZE = 64 * 1024  # x MAX_BATCHES in flight per stream: 4 MiB at most


class BodyError(Exception):
    """The connection ended inside the body: the stream was cut."""


def pieces(response: Any) -> Iterator[bytes]:
    """The decoded body of a urllib3 response, in the largest pieces available; ends cleanly only
    at the body's proper end, raises `BodyError` (or an OSError) when the connection breaks."""
    raw = getattr(response, "_fp", None)
    if raw is None or not getattr(raw, "chunked", False) or getattr(raw, "chunk_left", None) is not None:
        # Not a fresh chunked body (a proxy sent Content-Length, or a read began): the client's way.
        yield from response.stream(READ_SIZE, decode_content=False)
        return
    yield from _Chunked(raw.fp).pieces()


class _Chunked:
    def __init__(self, fp: Any) -> None:
        self.fp = fp  # the connection's buffered reader, positioned at the body's first byte
        self.left = 0  # bytes of the current chunk's data not read yet
        self.crlf = False  # the current chunk's data is read; its CRLF is not
        self.pending = b""  # framing bytes that arrived incomplete
        self.done = False
        self.poll = _ready_check(fp)

    def pieces(self) -> Iterator[bytes]:
        while not self.done:
            out: list[bytes] = []
            got = 0
            while True:
                data = self.fp.read1(READ_SIZE)
                if not data:
                    raise BodyError("connection closed inside a chunked body")
                got += len(data)
                self._decode(self.pending + data if self.pending else data, out)
                if self.done or got >= READ_SIZE or not self.poll():
                    break
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)

    def _decode(self, raw: bytes, out: list[bytes]) -> None:
        pos, size = 0, len(raw)
        while pos < size:
            if self.left:
                end = min(size, pos + self.left)
                out.append(raw[pos:end] if pos or end < size else raw)
                self.left -= end - pos
                self.crlf = not self.left
                pos = end
            elif self.crlf:
                if size - pos < 2:
                    break
                if raw[pos : pos + 2] != b"\r\n":
                    raise BodyError("malformed chunked body")
                self.crlf = False
                pos += 2
            else:
                line_end = raw.find(b"\r\n", pos)
                if line_end < 0:
                    if size - pos > 1024:
                        raise BodyError("malformed chunk size line")
                    break
                try:
                    self.left = int(raw[pos:line_end].split(b";", 1)[0], 16)
                except ValueError as err:
                    raise BodyError("malformed chunk size line") from err
                pos = line_end + 2
                if not self.left:
                    self.done = True  # trailers, if any, are not read: the connection is closed after
                    pos = size
        self.pending = raw[pos:] if pos < size else b""


def _ready_check(fp: Any) -> Any:
    """A function telling whether more bytes can be read without blocking. After `read1` with a
    size above the buffer's, the buffered reader holds nothing: the socket (or, for TLS, the
    rest of a record) has what is ready."""
    try:
        sock = fp.raw._sock  # SocketIO under the buffered reader
        fileno = sock.fileno()
    except (AttributeError, OSError):
        return lambda: False
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    pending = getattr(sock, "pending", None)

    def ready() -> bool:
        return bool(pending and pending()) or bool(poller.poll(0))

    return ready
