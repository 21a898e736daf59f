"""Every occurrence of any of a set of strings in a buffer, in one pass over it (Aho-Corasick).

    matcher = Matcher([b"hunter22", b"s3cr3t-token"])
    matcher.occurrences(b"pw=hunter22", cut=11)   # [(3, 11)]

Built on ahocorasick_rs (the Rust `aho-corasick` crate): its leftmost-longest searcher runs a SIMD
prefilter (Teddy) for up to 64 patterns, several GB/s on log text, so up to `GROUPS` groups of 64
are searched one after another; a larger set (the lines of a long certificate bundle) is one
automaton, still one pass, a few hundred MB/s. Cost is linear in the buffer's size whatever the
number of patterns (docs/benchmarks.md has the measurements behind these numbers).

A leftmost-longest search reports non-overlapping matches only. An occurrence it skips starts
inside one it reports (of the same group). One that also ends inside adds nothing to the masked
span; one that goes on past the match's end starts with the matched pattern's suffix, so each
pattern's possible continuations are listed once (`_continuations`) and a match checks only
whether one of them follows it. (A set larger than `GROUPS` groups searches each reported match's
neighbourhood again with an overlapping search instead.) Either way the union of the spans is
exactly what the occurrences cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import AnyStr, Generic

import ahocorasick_rs

GROUP = 64  # patterns per automaton that still gets the SIMD prefilter
GROUPS = 4  # beyond GROUPS * GROUP patterns one automaton is faster than many passes


class Matcher(Generic[AnyStr]):
    """An immutable set of non-empty patterns, all `bytes` or all `str`."""

    def __init__(self, patterns: Sequence[AnyStr]) -> None:
        if not patterns or not all(patterns):
            raise ValueError("a matcher needs non-empty patterns")
        items = list(patterns)
        self._bytes = isinstance(items[0], bytes)
        make = ahocorasick_rs.BytesAhoCorasick if self._bytes else ahocorasick_rs.AhoCorasick
        longest = ahocorasick_rs.MatchKind.LeftmostLongest
        size = GROUP if len(items) <= GROUP * GROUPS else len(items)
        self._finders = [(i, make(items[i : i + size], matchkind=longest)) for i in range(0, len(items), size)]
        self.max_len = max(len(p) for p in items)
        self._continuations = _continuations(items) if len(items) <= GROUP * GROUPS else None
        self._items, self._make = items, make
        if self._continuations is None:
            _ = self._overlapping  # built with the rest: the first stream is not the one to wait for it

    @cached_property
    def _overlapping(self) -> ahocorasick_rs.AhoCorasick | ahocorasick_rs.BytesAhoCorasick:
        """Standard semantics, the only kind that reports overlapping matches: what a set too large
        for continuations searches each match's neighbourhood with. Built only for such a set."""
        return self._make(self._items)

    def occurrences(self, buf: AnyStr, cut: int) -> list[tuple[int, int]]:
        """(start, end) of the occurrences starting before `cut`, sorted by start: together they
        cover exactly what every occurrence does (one that lies inside another may be left out)."""
        spans: list[tuple[int, int]] = []
        continuations = self._continuations
        hidden = []
        for first, finder in self._finders:
            for index, start, end in finder.find_matches_as_indexes(buf):
                if start >= cut:
                    break  # reported in order of their starts
                spans.append((start, end))
                if continuations is not None:
                    # The text at start..end is that pattern: only a pattern that starts inside it
                    # with its end, and whose rest follows, can be hidden in this match.
                    for offset, rest in continuations[first + index]:
                        if start + offset < cut and buf.startswith(rest, end):
                            hidden.append((start + offset, end + len(rest)))
        if not spans or continuations is not None:
            spans.extend(hidden)
            spans.sort()
            return spans
        view = memoryview(buf) if self._bytes else buf  # windows of bytes without copies
        size, longest = len(buf), self.max_len
        for start, end in spans:
            if end - start < 2:
                continue
            low, high = start + 1, min(size, end - 1 + longest)
            for _, first, last in self._overlapping.find_matches_as_indexes(view[low:high], overlapping=True):
                if low + first < min(end, cut):
                    hidden.append((low + first, low + last))
        spans.extend(hidden)
        spans.sort()
        return spans


def _continuations(patterns: list[AnyStr]) -> list[tuple[tuple[int, AnyStr], ...]]:
    """Per pattern P: (k, rest) for each pattern Q that starts k characters into P and goes on past
    its end (P[k:] + rest == Q). An occurrence of Q hidden in a match of P is exactly one of these
    with its `rest` right after the match; a Q that ends inside P adds nothing to P's span."""
    starting: dict[AnyStr, list[AnyStr]] = {}
    for q in set(patterns):
        for n in range(1, len(q)):
            starting.setdefault(q[:n], []).append(q)
    return [tuple((k, q[len(p) - k :]) for k in range(1, len(p)) for q in starting.get(p[k:], ())) for p in patterns]
