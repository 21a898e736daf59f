"""Resume tokens: where a client's copy of a run's log stream ends, carried by the client.

The server keeps no state between requests: a token names, for one run (bound to its UID) and one
set of task/step filters, what was delivered:

- the *stable* part: 32-bit hashes of the finished attempts (pods whose every container was
  delivered) and of the notices already sent; it changes only when an attempt ends or a notice
  goes out, so it is encoded once per change and cached;
- the *active* part: for each attempt in progress, its step index and that container's log
  `Cursor` (last timestamp in ns, lines delivered with it, bytes delivered of a long line cut
  into pieces); it changes on every line but is a few bytes per container.

Text: `<stable>.<active>`, each unpadded base64url.

    stable = 0x02 | uid hash (8) | filter hash (2) | varint n | n x u32 (sorted) | crc32 (4)
    active = varint m | m x (u32 pod hash | varint step index | u64 ns | varint count
             | varint piece) | crc16

The active checksum is seeded with the stable one, so an active part glued to the wrong stable
part is refused. A token costs ~45 characters for a simple run plus ~5.5 per finished attempt or
notice. NDJSON and `cursors=true` carry one per line: `shared.logs.line_cursors` builds the active
parts of a whole batch of lines at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import zlib
from dataclasses import dataclass, field

from shared.logs.cursor import MAX_NS, Cursor

VERSION = 2
MAX_TOKEN = 8192  # characters; far above any real run's token, refused before decoding
MAX_ENTRIES = 4096
# Bounds of a decoded cursor: anything beyond cannot have come from a stream (a kubelet stamp is a
# Go time in int64 ns, `MAX_NS`; lines and bytes of one stamp or one line far below 2**40), so it
# is refused instead of reaching the log reader.
MAX_COUNT = 2**40


class TokenError(ValueError):
    """A resume token cannot be used; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=4).digest(), "big")


def attempt_key(pod: str) -> int:
    return key_hash("a/" + pod)


def notice_key(key: str) -> int:
    return key_hash("n/" + key)


def uid_hash(uid: str) -> bytes:
    return hashlib.blake2b(uid.encode(), digest_size=8).digest()


def filter_hash(tasks: frozenset[str], steps: frozenset[str]) -> bytes:
    text = ",".join(sorted(tasks)) + "|" + ",".join(sorted(steps))
    return hashlib.blake2b(text.encode(), digest_size=2).digest()


@dataclass(frozen=True)
class Binding:
    """What a token is valid for: one run (by UID) followed with one set of filters."""

    uid: bytes
    filters: bytes

    @classmethod
    def of(cls, uid: str, tasks: frozenset[str] = frozenset(), steps: frozenset[str] = frozenset()) -> Binding:
        return cls(uid_hash(uid), filter_hash(tasks, steps))


@dataclass
class ResumePoint:
    """A decoded token: what the new stream skips."""

    done: frozenset[int] = frozenset()
    active: dict[int, tuple[int, Cursor]] = field(default_factory=dict)  # pod hash -> (step index, cursor)

    def attempt_done(self, pod: str) -> bool:
        return attempt_key(pod) in self.done

    def notice_sent(self, key: str) -> bool:
        return bool(key) and notice_key(key) in self.done

    def position(self, pod: str) -> tuple[int, Cursor] | None:
        """The step index and cursor an attempt in progress continues from."""
        return self.active.get(attempt_key(pod))


# -- varints -----------------------------------------------------------------------------------
def put_varint(value: int, out: bytearray) -> None:
    if 0 <= value < 0x80:
        out.append(value)
        return
    if value < 0:
        raise ValueError("negative")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise TokenError(400, "resume token is truncated")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise TokenError(400, "resume token is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        value = shift = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 70:
                raise TokenError(400, "resume token is malformed")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise TokenError(400, "resume token has trailing data")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(c not in _ALPHABET for c in text):
        raise TokenError(400, "resume token is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise TokenError(400, "resume token is not base64url") from err


_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


POD = struct.Struct(">I")
NS = struct.Struct(">Q")
CRC16 = struct.Struct(">H")


# -- encoding ----------------------------------------------------------------------------------
def encode_stable(binding: Binding, done: set[int] | frozenset[int]) -> tuple[str, int]:
    """The stable part and its checksum (which seeds the active part's)."""
    out = bytearray([VERSION])
    out += binding.uid + binding.filters
    put_varint(len(done), out)
    for value in sorted(done):
        out += struct.pack(">I", value)
    crc = zlib.crc32(out)
    out += struct.pack(">I", crc)
    return _b64(bytes(out)), crc


def pack_entry(pod: int, index: int, cursor: Cursor, out: bytearray) -> None:
    out += POD.pack(pod)
    put_varint(index, out)
    out += NS.pack(cursor.ns)
    put_varint(cursor.same, out)
    put_varint(cursor.piece, out)


def _sealed(body: bytes | bytearray, stable_crc: int) -> str:
    return _b64(bytes(body) + CRC16.pack(zlib.crc32(body, stable_crc) & 0xFFFF))


def encode_active(active: dict[int, tuple[int, Cursor]], stable_crc: int) -> str:
    out = bytearray()
    put_varint(len(active), out)
    for pod, (index, cursor) in active.items():
        pack_entry(pod, index, cursor, out)
    return _sealed(out, stable_crc)


def decode(token: str, binding: Binding, run_name: str = "the run") -> ResumePoint:
    """Validates `token` for `binding`; raises TokenError (400 malformed, 409 another run)."""
    if len(token) > MAX_TOKEN:
        raise TokenError(400, f"resume token longer than {MAX_TOKEN} characters")
    stable_text, dot, active_text = token.strip().partition(".")
    if not dot:
        raise TokenError(400, "resume token is malformed (expected <stable>.<active>)")
    raw = _unb64(stable_text)
    if len(raw) < 1 + 8 + 2 + 1 + 4:
        raise TokenError(400, "resume token is truncated")
    body, crc_bytes = raw[:-4], raw[-4:]
    crc = zlib.crc32(body)
    if struct.unpack(">I", crc_bytes)[0] != crc:
        raise TokenError(400, "resume token is corrupted (checksum mismatch)")
    reader = _Reader(body)
    if reader.byte() != VERSION:
        raise TokenError(400, "resume token has an unknown version; start a new follow without resume")
    uid, filters = reader.take(8), reader.take(2)
    count = reader.varint()
    if count > MAX_ENTRIES:
        raise TokenError(400, "resume token is malformed")
    done = frozenset(struct.unpack(">I", reader.take(4))[0] for _ in range(count))
    reader.end()

    active: dict[int, tuple[int, Cursor]] = {}
    if active_text:
        araw = _unb64(active_text)
        if len(araw) < 3:
            raise TokenError(400, "resume token is truncated")
        abody = araw[:-2]
        if struct.unpack(">H", araw[-2:])[0] != zlib.crc32(abody, crc) & 0xFFFF:
            raise TokenError(400, "resume token is corrupted (its parts do not belong together)")
        areader = _Reader(abody)
        entries = areader.varint()
        if entries > MAX_ENTRIES:
            raise TokenError(400, "resume token is malformed")
        for _ in range(entries):
            pod = struct.unpack(">I", areader.take(4))[0]
            index = areader.varint()
            ns = NS.unpack(areader.take(8))[0]
            same, piece = areader.varint(), areader.varint()
            if index >= MAX_ENTRIES or ns > MAX_NS or same > MAX_COUNT or piece > MAX_COUNT:
                raise TokenError(400, "resume token names a position no stream can have reached")
            active[pod] = (index, Cursor(ns, same, piece))
        areader.end()
    # Checked last: a corrupted token is reported as such, not as another run's.
    if uid != binding.uid:
        raise TokenError(
            409,
            f"the resume token belongs to another PipelineRun named {run_name} (it was deleted and "
            "created again); follow the new run without resume",
        )
    if filters != binding.filters:
        raise TokenError(400, "the resume token was issued for other task/step filters; use the same ones")
    return ResumePoint(done, active)
