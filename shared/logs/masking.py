"""Replace secret values by `***` in text and in streams of chunks.

    masker = SecretMasker([b"hunter22", "s3cr3t-token"])
    masker.mask(b"password=hunter22")            # b"password=***"
    stream = masker.stream()                      # one per log stream (it keeps state)
    for chunk in chunks:
        out(stream.feed(chunk))
    out(stream.flush())                           # at the end of the stream

Semantics (identical for one-shot and streamed input, whatever the chunk boundaries):

- Every byte covered by an occurrence of any secret is masked; overlapping occurrences (`abcd` and
  `cdef` in `abcdef`, or `aaaa` in `aaaaaa`) merge into one `***`, so no fragment of a secret is
  ever emitted. Where secrets nest, the longer one covers the shorter.
- Multi-line values (certificates, keys, JSON documents) are masked line by line: each line of the
  value (stripped of surrounding whitespace) is a secret of its own. That is what survives when
  the log is cut into lines and prefixed, and it means no secret contains a newline, so a stream
  can release everything up to its last newline at once (live logs are not held back).
- Values (or lines of values) shorter than `MIN_SECRET_LENGTH` bytes are ignored: masking `true`,
  `1` or `abc` everywhere would make logs unreadable and tell an attacker the value anyway.
- A stream holds back at most `max_len - 1` bytes after the last newline (the longest secret
  minus one) until more data or `flush()` arrives.

- A value (or line of one) longer than `BLOCK` bytes is masked as overlapping blocks of `BLOCK`
  bytes: every occurrence is still covered whole (the blocks overlap, so their masks merge), and
  a stream never holds back more than `BLOCK - 1` bytes, whatever a Secret holds.

Speed: one pass of a compiled multi-pattern matcher (`matcher.Matcher`, Aho-Corasick) over each
chunk, linear in its size whatever the number of values; a call per occurrence, never a Python
loop per byte, per line or per value. Which forms of a Secret's value to look for (its base64 and
URL-encoded forms too) is `secret_forms`'s business: this module masks exactly what it is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import AnyStr, Generic

from shared.logs.matcher import Matcher
from shared.metrics import masked

MIN_SECRET_LENGTH = 4
MASK = "***"
BLOCK = 1024


def _pieces(value: bytes, min_length: int) -> list[bytes]:
    """The maskable parts of one secret value: its non-trivial lines, stripped, in blocks."""
    return [
        block for line in value.splitlines() if len(piece := line.strip()) >= min_length for block in _blocks(piece)
    ]


def _blocks(piece: bytes) -> list[bytes]:
    if len(piece) <= BLOCK:
        return [piece]
    step = BLOCK - 1  # consecutive blocks share a byte: their masks merge into one
    return [piece[i : i + BLOCK] for i in range(0, len(piece) - BLOCK, step)] + [piece[-BLOCK:]]


class SecretMasker:
    """An immutable set of secret values and the compiled patterns that find them."""

    def __init__(
        self, secrets: Iterable[str | bytes], *, min_length: int = MIN_SECRET_LENGTH, mask: str = MASK
    ) -> None:
        if min_length < 1:
            raise ValueError("min_length must be at least 1")
        values: set[bytes] = set()
        for secret in secrets:
            raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
            values.update(_pieces(raw, min_length))
        # Longest first: at one position the regex engine takes the first alternative that matches.
        self._values: tuple[bytes, ...] = tuple(sorted(values, key=lambda v: (-len(v), v)))
        self.max_len = len(self._values[0]) if self._values else 0
        self._mask_bytes = mask.encode("utf-8")
        self._mask_str = mask
        self._bytes_matcher = Matcher(self._values) if self._values else None

    @cached_property
    def _str_matcher(self) -> Matcher[str] | None:
        """Built on first use: log streams are bytes."""
        texts = []
        for value in self._values:
            try:
                texts.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                continue  # a binary value cannot occur in decoded text as such
        return Matcher(texts) if texts else None

    def __bool__(self) -> bool:
        return bool(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never the values themselves
        return f"SecretMasker({len(self._values)} values, max_len={self.max_len})"

    def mask(self, data: AnyStr) -> AnyStr:
        """Mask a complete text (a whole log, or one line when secrets never span lines)."""
        stream: MaskingStream[AnyStr] = MaskingStream(self, type(data))
        return stream.feed(data) + stream.flush()

    def mask_lines(self, lines: Iterable[AnyStr]) -> Iterable[AnyStr]:
        """Mask an iterable of lines one by one; valid because no secret contains a newline."""
        for line in lines:
            yield self.mask(line)

    def stream(self, kind: type[AnyStr] = bytes) -> MaskingStream[AnyStr]:  # type: ignore[assignment]
        """A fresh stateful masker for one stream of `bytes` (default) or `str` chunks."""
        return MaskingStream(self, kind)


class MaskingStream(Generic[AnyStr]):
    """Masks one stream fed chunk by chunk; output never contains a secret or a part of one."""

    def __init__(self, masker: SecretMasker, kind: type[AnyStr]) -> None:
        self._kind = kind
        self._matcher: Matcher[AnyStr] | None
        if kind is bytes:
            self._matcher = masker._bytes_matcher  # type: ignore[assignment]
            self._mask = masker._mask_bytes
            self._newline = b"\n"
        elif kind is str:
            self._matcher = masker._str_matcher  # type: ignore[assignment]
            self._mask = masker._mask_str
            self._newline = "\n"
        else:
            raise TypeError("kind must be bytes or str")
        self._hold = max(masker.max_len - 1, 0)
        self._tail: AnyStr = kind()
        # How many leading characters of the tail are already masked: a merged mask whose `***` was
        # emitted may continue into the tail, and an occurrence overlapping it must extend it
        # silently rather than start a second `***`.
        self._covered = 0

    @property
    def held(self) -> int:
        """Bytes held back for the next feed that no mask sent so far covers."""
        return max(len(self._tail) - self._covered, 0)

    def feed(self, chunk: AnyStr) -> AnyStr:
        if not isinstance(chunk, self._kind):
            raise TypeError(f"this stream masks {self._kind.__name__}, got {type(chunk).__name__}")
        if self._matcher is None:
            return chunk
        if not self._tail and chunk.endswith(self._newline):
            # Whole lines and nothing held (the log path's usual feed): one search, and without an
            # occurrence the chunk goes out as it is.
            spans = self._matcher.occurrences(chunk, len(chunk))
            return self._emit(chunk, len(chunk), spans=spans) if spans else chunk
        buf = self._tail + chunk if self._tail else chunk
        # Every occurrence starting before `cut` lies wholly inside `buf` (it is at most max_len
        # long), so masking up to `cut` decides exactly what the unsplit text would. After the last
        # newline that holds as well, since no secret contains one.
        cut = max(len(buf) - self._hold, buf.rfind(self._newline) + 1)
        return self._emit(buf, cut)

    def moved_to(self, masker: SecretMasker) -> MaskingStream[AnyStr]:
        """A stream of `masker` (a superset of this one's values: rotated Secrets add values) that
        goes on where this one is, with what it holds back."""
        stream: MaskingStream[AnyStr] = MaskingStream(masker, self._kind)
        stream._tail, stream._covered = self._tail, self._covered
        return stream

    def flush(self) -> AnyStr:
        """The held-back tail, masked; the stream can be reused afterwards."""
        if self._matcher is None or not self._tail:
            self._tail, self._covered = self._kind(), 0
            return self._kind()
        return self._emit(self._tail, len(self._tail), final=True)

    def _emit(self, buf: AnyStr, cut: int, final: bool = False, spans: list[tuple[int, int]] | None = None) -> AnyStr:
        out: list[AnyStr] = []
        masks = 0
        covered = self._covered  # end of the current merged mask, relative to buf
        pos = covered  # first character not yet emitted (or dropped as part of a mask)
        assert self._matcher is not None
        for start, end in self._matcher.occurrences(buf, cut) if spans is None else spans:
            if start < covered:
                covered = max(covered, end)  # overlaps the current mask: extend it
            else:
                out.append(buf[pos:start])
                out.append(self._mask)
                masks += 1
                covered = end
            pos = covered
        if pos < cut:
            out.append(buf[pos:cut])
            pos = cut
        if masks:
            masked(masks)  # tpl_logs_masked_values_total (shared/metrics)
        if final:
            self._tail, self._covered = self._kind(), 0
        else:
            self._tail = buf[cut:]
            self._covered = max(covered - cut, 0)
        return self._kind().join(out)
