"""What authentication decides: the caller (`Principal`) and the answer (`Decision`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

REALM = "tekton-pipeline-listener"
NOT_CONFIGURED = "authentication is not configured on this service"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and the namespaces it may read (None: all)."""

    name: str
    namespaces: frozenset[str] | None = None
    kind: str = "user"  # "user" (Basic), "token" (Bearer) or "oidc" (a CI job's signed token)
    # Labels every run this caller reads must carry (OIDC rules: a project's own runs only).
    run_labels: tuple[tuple[str, str], ...] = ()

    def may_read(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def may_read_run(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.run_labels)


@dataclass(frozen=True)
class Decision:
    ok: bool
    principal: Principal | None = None
    status: int = 200
    error: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def allow(cls, principal: Principal) -> Decision:
        return cls(ok=True, principal=principal)

    @classmethod
    def challenge(cls, error: str) -> Decision:
        return cls(
            ok=False, status=401, error=error, headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
        )

    @classmethod
    def too_many(cls, retry_after: int) -> Decision:
        return cls(
            ok=False,
            status=429,
            error="too many failed authentication attempts; retry later",
            headers={"Retry-After": str(retry_after)},
        )

    @classmethod
    def unavailable(cls) -> Decision:
        return cls(ok=False, status=503, error=NOT_CONFIGURED)
