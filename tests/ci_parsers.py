"""Readers of a job log the way the CI systems read it: GitLab's collapsible sections and GitHub
Actions' workflow commands. Strict where the systems are lenient, so a test sees every slip."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# GitLab's section marker (lib/gitlab/ci/ansi2json): name of [a-zA-Z0-9_.-], options as k=v,...
GITLAB_MARKER = re.compile(rb"section_(start|end):(\d+):([a-zA-Z0-9_.-]+)(?:\[(\w+=\w+(?:,\w+=\w+)*)\])?\r\x1b\[0K")


@dataclass
class GitLabSection:
    name: str
    header: str
    options: dict[str, str]
    start: int
    parent: GitLabSection | None
    end: int | None = None
    lines: list[bytes] = field(default_factory=list)
    children: list[GitLabSection] = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        return self.options.get("collapsed") == "true"

    @property
    def duration(self) -> int:
        assert self.end is not None
        return self.end - self.start

    def all_lines(self) -> list[bytes]:
        return [*self.lines, *(line for child in self.children for line in child.all_lines())]


@dataclass
class GitLabLog:
    sections: list[GitLabSection]  # in the order they start
    top: list[bytes]  # lines outside any section

    def titled(self, header: str) -> list[GitLabSection]:
        return [s for s in self.sections if s.header == header]


def parse_gitlab(body: bytes) -> GitLabLog:
    """Sections must nest (an end closes the innermost open section), be closed, have unique
    names and end no earlier than they start."""
    stack: list[GitLabSection] = []
    log = GitLabLog([], [])
    for raw in body.split(b"\n"):
        line = raw.lstrip(b"\r")  # the listener's heartbeats
        match = GITLAB_MARKER.search(line)
        if match is None:
            if line:
                (stack[-1].lines if stack else log.top).append(line)
            continue
        assert match.start() == 0, f"a marker inside a line: {line!r}"
        kind, stamp, name = match.group(1).decode(), int(match.group(2)), match.group(3).decode()
        if kind == "start":
            options = dict(o.split("=") for o in match.group(4).decode().split(",")) if match.group(4) else {}
            parent = stack[-1] if stack else None
            header = line[match.end() :].decode("utf-8", "replace")
            section = GitLabSection(name, header, options, stamp, parent)
            assert all(s.name != name for s in log.sections), f"section name {name} used twice"
            if parent is not None:
                parent.children.append(section)
            log.sections.append(section)
            stack.append(section)
        else:
            assert stack and stack[-1].name == name, f"section_end of {name} while {[s.name for s in stack]} open"
            assert line[match.end() :] == b"", f"text after section_end: {line!r}"
            stack[-1].end = stamp
            assert stamp >= stack[-1].start, name
            stack.pop()
    assert not stack, f"sections never closed: {[s.name for s in stack]}"
    return log


@dataclass
class GitHubCommand:
    name: str
    properties: dict[str, str]
    data: str


@dataclass
class GitHubLog:
    commands: list[GitHubCommand]
    shown: list[str]  # lines shown as log text

    def named(self, name: str) -> list[GitHubCommand]:
        return [c for c in self.commands if c.name == name]


def _unescape_data(value: str) -> str:
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(value: str) -> str:
    return _unescape_data(value.replace("%3A", ":").replace("%2C", ","))


def parse_github(body: bytes) -> GitHubLog:
    """The Actions runner's reading of a step's output: `::name props::data` at the start of a
    line (after leading blanks), the legacy `##[name props]data` anywhere in it, and nothing
    while `::stop-commands::<token>` holds, until a line that is exactly `::<token>::`."""
    log = GitHubLog([], [])
    stopped: str | None = None
    for raw in body.split(b"\n"):
        line = raw.lstrip(b"\r").decode("utf-8", "replace")
        if stopped is not None:
            if line == f"::{stopped}::":
                stopped = None
            elif line:
                log.shown.append(line)
            continue
        text = line.lstrip()
        command: GitHubCommand | None = None
        if text.startswith("::") and text.find("::", 2) > 0:
            end = text.find("::", 2)
            name, _, props = text[2:end].partition(" ")
            command = GitHubCommand(name, _properties(props), _unescape_data(text[end + 2 :]))
        elif "##[" in line and "]" in line[line.index("##[") :]:
            head = line[line.index("##[") + 3 :]
            inner, _, data = head.partition("]")
            name, _, props = inner.partition(" ")
            command = GitHubCommand(name, _properties(props, ";"), _unescape_data(data))
        if command is None:
            if line:
                log.shown.append(line)
            continue
        log.commands.append(command)
        if command.name == "stop-commands":
            stopped = command.data
    return log


def _properties(text: str, sep: str = ",") -> dict[str, str]:
    out = {}
    for item in filter(None, text.split(sep)):
        key, _, value = item.partition("=")
        out[key.strip()] = _unescape_property(value)
    return out
