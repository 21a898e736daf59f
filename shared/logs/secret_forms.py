"""The strings that give a Secret's value away in a log: the value, and how steps re-encode it.

A step that prints `$TOKEN` prints the value; one that builds a header or a URL prints its base64
or URL-encoded form (`Authorization: Basic …`, `https://user:p%40ss@host`), and those must be
masked as well. `forms(value)` lists them for `SecretMasker`, which masks each line of each form.

Base64 encodes 3 bytes as 4 characters, so the characters a value turns into depend on where it
starts inside the encoded data (`user:` before it shifts it by 5 bytes, i.e. by 2 in the group of
3). For each of the 3 alignments, the characters that depend on the value's bytes alone are a
form of it (standard and URL-safe alphabet); the 1-2 characters at each end that mix in the
neighbouring bytes are left, as they say almost nothing. URL encoding is per byte: the
percent-encoded forms (`%2B`, and `+` for a space) of each line of the value.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def forms(value: bytes) -> list[bytes]:
    """`value` itself, then its encoded forms that differ from it (duplicates removed)."""
    value = value.strip()
    found: dict[bytes, None] = {value: None}
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + value)
        # Character i holds bits 6i..6i+5: keep those wholly inside the value's bits.
        first = -(-8 * shift // 6)
        last = 8 * (shift + len(value)) // 6
        inner = encoded[first:last]
        found[inner] = None
        found[inner.translate(_URLSAFE)] = None
    for line in value.splitlines():
        for encoded in (quote(line, safe=""), quote(line), quote_plus(line)):  # `/` kept or not
            found[encoded.encode("ascii")] = None
    return [form for form in found if form]
