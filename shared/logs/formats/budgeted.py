"""A follow's batches through the log budget to the writer, and the URLs of what it left out."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, urlencode

from shared.logs.cursor import Cursor
from shared.logs.events import Event, LogLines
from shared.logs.formats.budget import BudgetFilter, ElisionUrl
from shared.logs.tokens import Binding, attempt_key, encode_active, encode_stable
from shared.logs.writers import Writer


def written(batches: Iterator[list[Event]], writer: Writer, budget: BudgetFilter | None) -> Iterator[bytes]:
    if budget is None:
        return (b"".join(writer.write(event) for event in batch) for batch in batches)
    return _budgeted(batches, writer, budget)


def _budgeted(batches: Iterator[list[Event]], writer: Writer, budget: BudgetFilter) -> Iterator[bytes]:
    try:
        for batch in batches:
            yield b"".join(writer.write(event) for event in budget.apply(batch))
            if budget.done:
                return
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # releases the follower's watches and log connections at once


def elision_url(namespace: str, name: str, uid: str) -> ElisionUrl:
    """`/logs` of one step from just before the lines left out, for exactly that many lines: a
    resume token for the `task`/`step` filters, with the task's earlier attempts done."""

    def url(first: LogLines, cursor: Cursor, lines: int, earlier: list[str]) -> str:
        binding = Binding.of(uid, frozenset({first.task}), frozenset({first.step}))
        stable, crc = encode_stable(binding, {attempt_key(pod) for pod in earlier})
        active = {attempt_key(first.pod): (first.index, cursor)} if cursor.started else {}
        token = f"{stable}.{encode_active(active, crc)}"
        query = urlencode({"task": first.task, "step": first.step, "resume": token, "max_lines": lines})
        return f"/logs/{quote(namespace)}/{quote(name)}?{query}"

    return url
