"""Masking's own cost, in-process: one compiled matcher per chunk, linear in log size whatever the
number of values, against the former design (one `bytes.find` pass per value) in the same run.

The log is the other figures' build-log-like lines (`workloads.ci_lines`: one in 50 carries one of
20 Secret values) with timestamps, fed in 64 KiB runs of whole lines as the log path does. The
values: 20 tokens with their base64 and URL-encoded forms, then the same plus a 3000-line
certificate bundle (every line a value of its own, the whole bundle's base64 forms in 1 KiB
blocks): what made the former design crawl.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable

from bench.harness import Bench, Figure
from bench.workloads import MB, ci_lines, secret_values
from shared.logs.masking import SecretMasker
from shared.logs.secret_forms import forms

BUNDLE_LINES = 3000
CHUNK = 64 * 1024
STAMP = b"2026-12-03T10:00:00.123456789Z "


def masking(b: Bench, fig: Figure) -> None:
    rng = random.Random(7)
    values = secret_values()
    bundle = b"\n".join(
        [b"-----BEGIN CERTIFICATE-----", *(base64.b64encode(rng.randbytes(48)) for _ in range(BUNDLE_LINES))]
    )
    bundle += b"\n-----END CERTIFICATE-----\n"
    size = 2 * MB if b.quick else 20 * MB
    chunks = _log(values, size)
    log_bytes = sum(map(len, chunks))
    tokens = [form for value in values for form in forms(value)]
    sets = {"20 secrets": tokens, f"20 secrets + {BUNDLE_LINES}-line certificate bundle": tokens + forms(bundle)}
    plain = [*values, *(line.strip() for line in bundle.splitlines() if len(line.strip()) >= 4)]
    few = chunks[: max(1, len(chunks) // 20)]
    for _ in range(b.sizes.repeats):
        for label, patterns in sets.items():
            compile_seconds = _seconds(SecretMasker, patterns)
            masker = SecretMasker(patterns)
            fig.add(f"masking {label}: compile {len(masker)} patterns", "ms", compile_seconds * 1000)
            rate = log_bytes / _seconds(_mask, masker, chunks) / MB
            fig.add(f"masking {label}: one pass per chunk", "MB/s", rate)
        # The former design on the bundle: one pass per value; a slice of the log is enough to time it.
        old = sum(map(len, few)) / _seconds(_find_per_value, plain, few) / MB
        fig.add(f"former design (one find per value), {BUNDLE_LINES}-line bundle", "MB/s", old)
        new = fig.metric(f"masking 20 secrets + {BUNDLE_LINES}-line certificate bundle: one pass per chunk", "MB/s")
        fig.add("bundle: one pass / former design", "x", new.samples[-1] / old, ">= 20", (20).__le__)
    fig.notes.append(
        f"In-process, {log_bytes / MB:.3g} MB of ~140-byte lines fed in {CHUNK // 1024} KiB runs of whole lines; "
        "MB/s = log bytes / wall time of `MaskingStream.feed` over all of them. The former design is timed "
        "on a twentieth of the log (it is that slow); it knew no encoded forms, so it had fewer patterns."
    )


def _log(values: tuple[bytes, ...], size: int) -> list[bytes]:
    data = b"".join(STAMP + line + b"\n" for line in ci_lines(size, values)())
    chunks, start = [], 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + CHUNK) + 1 or len(data)
        chunks.append(data[start:end])
        start = end
    return chunks


def _mask(masker: SecretMasker, chunks: list[bytes]) -> None:
    stream = masker.stream()
    for chunk in chunks:
        stream.feed(chunk)
    stream.flush()


def _find_per_value(values: list[bytes], chunks: list[bytes]) -> None:
    for chunk in chunks:
        for value in values:
            at = chunk.find(value)
            while at >= 0:
                at = chunk.find(value, at + 1)


def _seconds(work: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    work(*args)
    return time.perf_counter() - started
