from __future__ import annotations

import json

from shared.config import Settings
from shared.http.query import Args, LogQuery, QueryError
from shared.kube.names import namespace_problem, object_name_problem
from shared.logs.events import Heartbeat, Notice, RunFinished, RunStarted
from shared.logs.writers import NdjsonWriter, TextWriter
from tests.support import log_line


def test_text_lines_use_tkn_prefixes_and_keep_raw_bytes() -> None:
    writer = TextWriter()
    line = log_line("build", "compile", b"caf\xe9 \xff", "2026-01-01T00:00:00Z")
    assert writer.write(line) == b"[build : compile] caf\xe9 \xff\n"
    assert TextWriter(timestamps=True).write(line).startswith(b"[build : compile] 2026-01-01T00:00:00Z caf")
    assert writer.write(Notice("deploy", "task skipped: When Expressions evaluated to false")) == (
        b"[deploy] task skipped: When Expressions evaluated to false\n"
    )
    # Heartbeats and the first byte are a lone carriage return: no visible text.
    assert writer.write(Heartbeat()) == b"\r" and writer.write(RunStarted("ns", "r")) == b"\r"


def test_ndjson_is_one_valid_object_per_line() -> None:
    writer = NdjsonWriter()
    raw = writer.write(log_line("t", "s", b"bad \xff", "ts", 1))
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    obj = json.loads(raw)
    assert obj == {"event": "log", "task": "t", "step": "s", "attempt": 1, "timestamp": "ts", "line": "bad \ufffd"}
    end = json.loads(writer.write(RunFinished({"reason": "Succeeded"})))
    assert end == {"event": "end", "status": {"reason": "Succeeded"}}


def test_names_follow_kubernetes_rules() -> None:
    assert object_name_problem("build-123.run") is None
    assert object_name_problem("Bad_Name") is not None
    assert object_name_problem("x" * 254) is not None
    assert namespace_problem("tekton-pipelines") is None
    assert namespace_problem("a.b") is not None
    assert namespace_problem("-a") is not None


def test_log_query_validation() -> None:
    settings = Settings()
    query = LogQuery.parse(Args([("task", "build,test"), ("step", "a"), ("timestamps", "")]), settings)
    assert query.tasks == {"build", "test"} and query.steps == {"a"} and query.timestamps
    assert LogQuery.parse(Args([]), settings, accept="application/x-ndjson").format == "ndjson"
    # Spaces and tabs around a value (a shell variable's, or `+` in a query) are trimmed.
    spaced = LogQuery.parse(
        Args([("cursors", " true\t"), ("wait", " 5 "), ("task", " build "), ("tail", " 3")]), settings
    )
    assert (spaced.cursors, spaced.wait, spaced.tasks, spaced.tail) == (True, 5.0, {"build"}, 3)
    for bad in [
        ("format", "xml"),
        ("wait", "-1"),
        ("wait", "nan"),
        ("heartbeat", "0.1"),
        ("tasks", "x"),
        ("task", "Bad_Name"),
        ("timestamps", "maybe"),
        ("wait", "99999999"),
        # Python's str.strip drops these as whitespace: `cursors=%1D` read as a bare `cursors` (fuzz).
        ("cursors", "\x1d"),
        ("timestamps", "\x1ctrue"),
        ("wait", "\x1f5"),
        ("tail", "\u20035"),
        ("since", "\x1e90s"),
        ("task", "\x1dbuild"),
        ("resume", "\x1dAAAA"),
        ("format", "text\x00"),
    ]:
        try:
            LogQuery.parse(Args([bad]), settings)
        except QueryError as err:
            assert str(err)
        else:
            raise AssertionError(f"{bad} accepted")
