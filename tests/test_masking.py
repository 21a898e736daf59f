"""Secret masking: one-shot, streamed across arbitrary chunk boundaries, line by line, in encoded forms."""

from __future__ import annotations

import base64
import itertools
import random
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.logs.masking import BLOCK, MIN_SECRET_LENGTH, SecretMasker
from shared.logs.matcher import Matcher
from shared.logs.secret_forms import forms


def feed_all(masker: SecretMasker, chunks: list[bytes]) -> bytes:
    stream = masker.stream()
    return b"".join(stream.feed(chunk) for chunk in chunks) + stream.flush()


def test_replaces_each_occurrence() -> None:
    masker = SecretMasker(["hunter22", b"s3cr3t-token"])
    assert masker.mask(b"pw=hunter22 token=s3cr3t-token hunter22") == b"pw=*** token=*** ***"
    assert masker.mask("pw=hunter22") == "pw=***"
    assert masker.mask(b"nothing here") == b"nothing here"


def test_longest_first_and_overlaps_merge() -> None:
    masker = SecretMasker(["abcd", "abcdefgh", "cdefXY", "aaaa"])
    assert masker.mask("xabcdefghx") == "x***x"  # nested: the longer one, once
    assert masker.mask("abcdefXY") == "***"  # overlapping: merged, no fragment left
    assert masker.mask("aaaaaa") == "***"  # self-overlapping
    assert masker.mask("aaaa aaaa") == "*** ***"
    assert masker.mask("abcdabcd") == "******"  # adjacent, not overlapping: two masks


def test_short_values_are_ignored() -> None:
    masker = SecretMasker(["abc", "", "1", "true", b"ab"])
    assert MIN_SECRET_LENGTH == 4
    assert len(masker) == 1
    assert masker.mask("abc 1 true") == "abc 1 ***"
    assert not SecretMasker(["abc"]) and SecretMasker(["abc"]).mask(b"abc") == b"abc"


def test_multiline_values_masked_per_line() -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END KEY-----\n"
    masker = SecretMasker([key])
    out = masker.mask("[task : step] " + key.replace("\n", "\n[task : step] "))
    assert "MIIEvQIBADANBgkq" not in out and "hkiG9w0BAQEFAASC" not in out
    assert out.startswith("[task : step] ***\n[task : step] ***\n")


def test_values_with_surrounding_whitespace() -> None:
    masker = SecretMasker([b"  padded-secret\n"])
    assert masker.mask(b"x=padded-secret;") == b"x=***;"


def test_split_across_chunks() -> None:
    masker = SecretMasker([b"supersecret"])
    data = b"start supersecret middle supersecret end"
    for size in range(1, len(data) + 1):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        out = feed_all(masker, chunks)
        assert out == b"start *** middle *** end"


def test_partial_secret_is_held_back_then_flushed() -> None:
    masker = SecretMasker([b"supersecret"])
    stream = masker.stream()
    assert stream.feed(b"abc super") == b""  # might be the start of the secret
    assert stream.feed(b"sec") == b"ab"  # no secret can start before "c" any more
    assert stream.flush() == b"c supersec"  # the stream ended: it was not the secret


def test_complete_lines_are_not_held_back() -> None:
    """Live logs: a finished line goes out at once (no secret contains a newline)."""
    masker = SecretMasker([b"a-rather-long-secret-value"])
    stream = masker.stream()
    assert stream.feed(b"line one\nline two\n") == b"line one\nline two\n"
    assert stream.feed(b"a-rather-long-secret-value\npartial") == b"***\n"
    assert stream.flush() == b"partial"


def test_str_stream_and_type_checks() -> None:
    masker = SecretMasker(["pässwörd"])
    stream = masker.stream(str)
    assert stream.feed("x pä") + stream.feed("sswörd y") + stream.flush() == "x *** y"
    with pytest.raises(TypeError):
        stream.feed(b"bytes")  # type: ignore[arg-type]
    assert SecretMasker([b"\xff\xfe\xfd\xfc"]).mask("text") == "text"  # binary value, text stream


def test_line_by_line() -> None:
    masker = SecretMasker(["token-1234"])
    lines = ["a token-1234\n", "b\n", "token-1234token-1234\n"]
    assert list(masker.mask_lines(lines)) == ["a ***\n", "b\n", "******\n"]


def test_no_secrets_is_a_passthrough() -> None:
    masker = SecretMasker([])
    stream = masker.stream()
    assert stream.feed(b"abc") == b"abc" and stream.flush() == b""


def test_repr_hides_values() -> None:
    assert "hunter22" not in repr(SecretMasker(["hunter22"]))


def test_regex_metacharacters_are_literal() -> None:
    masker = SecretMasker(["a.b*c+d?", "(x|y)[z]"])
    assert masker.mask("aXbbc+d? a.b*c+d? (x|y)[z] xz") == "aXbbc+d? *** *** xz"


# --- properties ------------------------------------------------------------------------------

ALPHABET = b"abcs\n:"  # small, so secrets recur and overlap often


@st.composite
def text_with_secrets(draw: st.DrawFn) -> tuple[list[bytes], bytes, list[int]]:
    secrets = draw(
        st.lists(
            st.binary(min_size=4, max_size=12).map(lambda b: bytes(ALPHABET[x % 5] for x in b)), min_size=1, max_size=4
        )
    )
    pieces = draw(
        st.lists(
            st.one_of(st.sampled_from(secrets), st.binary(max_size=8).map(lambda b: bytes(ALPHABET[x % 6] for x in b))),
            max_size=20,
        )
    )
    data = b"".join(pieces)
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=10)))
    return secrets, data, cuts


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_with_secrets())
def test_any_split_equals_unsplit_and_leaks_nothing(case: tuple[list[bytes], bytes, list[int]]) -> None:
    secrets, data, cuts = case
    masker = SecretMasker(secrets)
    whole = masker.mask(data)
    assert feed_all(masker, split(data, cuts)) == whole
    # Values are masked line by line (see the module docstring); these are the parts that count.
    pieces = [p for s in secrets for line in s.splitlines() if len(p := line.strip()) >= MIN_SECRET_LENGTH]
    for piece in pieces:
        assert piece not in whole
    # Every masked byte range really was a secret, and everything else is untouched: removing the
    # masks from both sides leaves the same skeleton.
    assert whole.replace(b"***", b"") == _reference(pieces, data)


def _reference(secrets: list[bytes], data: bytes) -> bytes:
    """A slow, obviously right model: drop every byte covered by any occurrence of any secret."""
    covered = [False] * len(data)
    for secret in secrets:
        start = data.find(secret)
        while start != -1:
            for i in range(start, start + len(secret)):
                covered[i] = True
            start = data.find(secret, start + 1)
    return bytes(b for b, c in zip(data, covered, strict=True) if not c)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=4, max_size=10), min_size=1, max_size=3), st.text(max_size=60), st.data())
def test_str_streams_match_unsplit(secrets: list[str], filler: str, data: st.DataObject) -> None:
    masker = SecretMasker(secrets)
    text = filler[: len(filler) // 2] + secrets[0] + filler[len(filler) // 2 :]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    bounds = [0, *cuts, len(text)]
    stream = masker.stream(str)
    out = "".join(stream.feed(text[a:b]) for a, b in itertools.pairwise(bounds)) + stream.flush()
    assert out == masker.mask(text)
    for piece in secrets[0].encode().splitlines():  # bytes semantics: lines end at \n or \r only
        if len(piece.strip()) >= MIN_SECRET_LENGTH:
            assert piece.strip().decode() not in out


def test_large_input_random_chunks() -> None:
    rng = random.Random(7)
    secrets = [f"secret-{i:04d}-{'x' * (i % 40)}".encode() for i in range(50)]
    parts = []
    for _ in range(20000):
        parts.append(rng.choice(secrets) if rng.random() < 0.05 else bytes(rng.choices(b"abcdefgh \n", k=20)))
    data = b"".join(parts)
    masker = SecretMasker(secrets)
    cuts = sorted(rng.sample(range(len(data)), 3000))
    out = feed_all(masker, split(data, cuts))
    assert out == masker.mask(data)
    assert not any(secret in out for secret in secrets)


# --- encoded forms, long values, many values -------------------------------------------------


@pytest.mark.parametrize("value", [b"hunter22-pass", b"p@ss w+rd/?x~", "pässwörd-€".encode(), bytes(range(256))])
def test_base64_forms_are_masked_at_every_alignment(value: bytes) -> None:
    masker = SecretMasker(forms(value))
    for prefix in (b"", b"u", b"us", b"user:", b"Authorization\x00"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(prefix + value + b"\ntail")
            out = masker.mask(b"header " + encoded + b" end")
            assert out.count(b"***") == 1, (prefix, encoded, out)
            # What is left around the mask are the characters that mix in the neighbouring bytes.
            left, right = out.split(b"***")
            assert len(left) <= len(b"header ") + len(encode(prefix)) + 1
            assert len(right) <= len(encode(b"\ntail")) + 2 + len(b" end")


def test_url_encoded_forms_are_masked() -> None:
    value = b"p@ss w+rd/?x&y=z"
    masker = SecretMasker(forms(value))
    for encoded in (quote(value, safe=""), quote_plus(value), quote(value)):
        assert masker.mask(f"https://ci:{encoded}@git.example/x".encode()) == b"https://ci:***@git.example/x"


def test_long_values_are_masked_whole_in_blocks() -> None:
    value = bytes(random.Random(3).choices(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=5 * BLOCK + 17))
    masker = SecretMasker([value])
    assert masker.max_len == BLOCK
    assert masker.mask(b"key=" + value + b";") == b"key=***;"
    assert masker.mask(b"part " + value[BLOCK - 1 : 2 * BLOCK - 1]) == b"part ***"  # one block alone
    stream = masker.stream()
    out = stream.feed(b"x" * 10 + value[:3000])
    assert stream.held <= BLOCK - 1 and value[:BLOCK] not in out
    assert out + stream.feed(value[3000:] + b"\n") + stream.flush() == b"x" * 10 + b"***\n"


def test_a_long_certificate_bundle_is_masked_line_by_line_in_one_pass() -> None:
    rng = random.Random(5)
    body = [base64.b64encode(rng.randbytes(48)) for _ in range(3000)]
    pem = b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(body) + b"\n-----END CERTIFICATE-----\n"
    masker = SecretMasker(forms(pem))
    log = b"".join(b"2026-01-01T00:00:00Z " + line + b"\n" for line in pem.splitlines())
    out = feed_all(masker, [log[i : i + 4096] for i in range(0, len(log), 4096)])
    assert out == b"".join(b"2026-01-01T00:00:00Z ***\n" for _ in pem.splitlines())
    # The whole bundle base64-encoded on one line (`base64 -w0 bundle.pem`) is masked too.
    out = masker.mask(b"b64 " + base64.b64encode(pem) + b"\n")
    assert out.startswith(b"b64 ***") and len(out) <= len(b"b64 ***\n") + 4  # the final newline's bits


def _covered(spans: list[tuple[int, int]]) -> set[int]:
    return {i for start, end in spans for i in range(start, end)}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_with_secrets(), st.integers(min_value=0, max_value=400))
def test_matcher_spans_cover_exactly_every_occurrence(case: tuple[list[bytes], bytes, list[int]], cut: int) -> None:
    """What a match's listed continuations find (`matcher._continuations`) is what the overlapping
    search around each match finds, and both what a search for each pattern at every position
    finds: the same characters covered, for occurrences starting before `cut`."""
    secrets, data, _ = case
    cut = min(cut, len(data))
    listed = Matcher(secrets)
    searched = Matcher(secrets)
    searched._continuations = None  # the path a set too large for continuations takes
    every = [(i, i + len(s)) for s in set(secrets) for i in range(len(data)) if i < cut and data.startswith(s, i)]
    assert _covered(listed.occurrences(data, cut)) == _covered(every)
    assert _covered(searched.occurrences(data, cut)) == _covered(every)
