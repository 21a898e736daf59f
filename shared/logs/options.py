"""What one client asked to follow: filters, heartbeat, deadline."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FollowOptions:
    tasks: frozenset[str] = frozenset()
    steps: frozenset[str] = frozenset()
    heartbeat_seconds: float = 15.0
    deadline: float | None = None  # time.monotonic() at which to end the stream early

    def wants_task(self, task: str) -> bool:
        return not self.tasks or task in self.tasks

    def wants_step(self, step: str) -> bool:
        return not self.steps or step in self.steps
