"""`format=gitlab`: GitLab's collapsible sections around each task (attempt) and each step in it.

    section_start:<unix>:<name>[collapsed=true]\\r\\e[0K<title>
    …
    section_end:<unix>:<name>\\r\\e[0K

GitLab shows each section's duration from the two Unix times, which are the kubelet's timestamps
of the first and the last line in it. Section names keep to GitLab's characters
(`[a-zA-Z0-9_.-]`). A task or step already known to have failed when its first line goes out
(a finished run replayed, a resumed stream) is expanded, every other one collapsed; the failure
digest after the last section is always expanded.
"""

from __future__ import annotations

import time

from shared.logs.formats.framed import FramedWriter, Section

ERASE = "\r\x1b[0K"


def section_start(section: Section) -> str:
    collapsed = "false" if section.expanded else "true"
    return f"section_start:{section.start}:{section.id}[collapsed={collapsed}]{ERASE}{section.title}"


def section_end(section: Section) -> str:
    return f"section_end:{section.last}:{section.id}{ERASE}"


class GitLabWriter(FramedWriter):
    def open_section(self, section: Section, is_step: bool) -> list[str]:
        return [section_start(section)]

    def close_section(self, section: Section, is_step: bool) -> list[str]:
        return [section_end(section)]

    def digest(self, name: str, digest: dict) -> list[str]:
        lines = super().digest(name, digest)
        now = int(time.time())
        section = Section(f"failure-digest_{now}", lines[0], now, now, expanded=True)
        return [section_start(section), *lines[1:], section_end(section)]
