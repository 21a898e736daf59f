"""Timing of authentication outcomes: known vs unknown users must be indistinguishable.

    .venv/bin/python -m bench.auth_timing [--cost 12] [--rounds 25]

Prints the median (and p10/p90) of `Authenticator.authenticate` for each outcome. The scenarios are
interleaved round by round so CPU frequency drift and neighbours affect all of them alike. Rate
limits are off (they would turn repeated failures into fast 429s, which is the point in production
but not what is measured here).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt

from shared.auth import Authenticator
from shared.auth.credentials import token_digest

PASSWORD = "correct-horse-battery"
TOKEN = "tpl_" + "k" * 43


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cost", type=int, default=12, help="bcrypt cost of the users (default 12, as the CLI)")
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "credentials"
        lines = [f"user{i}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(args.cost)).decode()}:*" for i in range(20)]
        lines.append(f"ci:sha256${token_digest(TOKEN).hex()}:*")
        path.write_text("\n".join(lines) + "\n")
        common = {"auth_file": str(path), "max_failures_per_address": 0, "max_failures_per_user": 0}
        cached = Authenticator("admin", "env-password-1", **common)  # type: ignore[arg-type]
        uncached = Authenticator("admin", "env-password-1", cache_ttl=0, **common)  # type: ignore[arg-type]
        assert cached.authenticate(basic("user0", PASSWORD)).ok  # warm the cache

        scenarios: dict[str, Callable[[], bool]] = {
            "success, known user (first request, bcrypt)": lambda: uncached.authenticate(basic("user1", PASSWORD)).ok,
            "failure, known user, wrong password": lambda: uncached.authenticate(basic("user2", "wrong-password")).ok,
            "failure, unknown user": lambda: uncached.authenticate(basic("nobody", "wrong-password")).ok,
            "failure, env user (AUTH_USERNAME), wrong password": lambda: (
                uncached.authenticate(basic("admin", "wrong-password")).ok
            ),
            "success, known user (cached)": lambda: cached.authenticate(basic("user0", PASSWORD)).ok,
            "success, bearer token": lambda: cached.authenticate(f"Bearer {TOKEN}").ok,
            "failure, bearer token": lambda: cached.authenticate("Bearer tpl_" + "x" * 43).ok,
        }
        expected = {name: name.startswith("success") for name in scenarios}
        samples: dict[str, list[float]] = {name: [] for name in scenarios}
        for _ in range(args.rounds):
            for name, run in scenarios.items():
                start = time.perf_counter()
                ok = run()
                samples[name].append(time.perf_counter() - start)
                assert ok == expected[name], name

    print(f"bcrypt cost {args.cost}, {args.rounds} rounds, times in milliseconds")
    print(f"{'scenario':52} {'median':>9} {'p10':>9} {'p90':>9}")
    for name, values in samples.items():
        deciles = statistics.quantiles(values, n=10)
        median = statistics.median(values) * 1e3
        print(f"{name:52} {median:9.3f} {deciles[0] * 1e3:9.3f} {deciles[-1] * 1e3:9.3f}")
    known = statistics.median(samples["failure, known user, wrong password"])
    unknown = statistics.median(samples["failure, unknown user"])
    print(f"unknown vs known user failure: {100 * (unknown - known) / known:+.1f}% difference of medians")


if __name__ == "__main__":
    main()
