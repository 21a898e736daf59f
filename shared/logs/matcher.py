"""Every occurrence of any of a set of strings in a buffer, in one pass over it (Aho-Corasick).

    matcher = Matcher([b"hunter22", b"s3cr3t-token"])
    matcher.occurrences(b"pw=hunter22", cut=11)   # [(3, 11)]

Built on ahocorasick_rs (the Rust `aho-corasick` crate): its leftmost-longest searcher runs a SIMD
prefilter (Teddy) for up to 64 patterns, several GB/s on log text, so up to `GROUPS` groups of 64
are searched one after another; a larger set (the lines of a long certificate bundle) is one
automaton, still one pass, a few hundred MB/s. Cost is linear in the buffer's size whatever the
number of patterns (docs/benchmarks.md has the measurements behind these numbers).

A leftmost-longest search reports non-overlapping matches only. An occurrence it skips starts
inside one it reports (of the same group), so each reported match's neighbourhood is searched
again with an overlapping search: the union of all spans is exactly what the occurrences cover.
"""

from __future__ import annotations

from collections.abc import Sequence
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
        self._finders = [make(items[i : i + size], matchkind=longest) for i in range(0, len(items), size)]
        # Standard semantics: the only kind that reports overlapping matches.
        self._overlapping = make(items)
        self.max_len = max(len(p) for p in items)

    def occurrences(self, buf: AnyStr, cut: int) -> list[tuple[int, int]]:
        """(start, end) of every occurrence starting before `cut`, sorted by start."""
        spans: list[tuple[int, int]] = []
        for finder in self._finders:
            for _, start, end in finder.find_matches_as_indexes(buf):
                if start >= cut:
                    break  # reported in order of their starts
                spans.append((start, end))
        if not spans:
            return spans
        view = memoryview(buf) if self._bytes else buf  # windows of bytes without copies
        size, longest = len(buf), self.max_len
        hidden = []
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
