"""Who may call the protected endpoints.

The functions use only this surface:

    authenticator = Authenticator.from_settings(settings.auth)     # settings: shared.config.Settings
    decision = authenticator.authenticate(request.headers.get("Authorization"), client_address)
    if not decision.ok: respond decision.status with decision.error and decision.headers
    if not decision.principal.may_read(namespace): 403

    stream_limiter = StreamLimiter.from_settings(settings.streams)
    lease = stream_limiter.acquire(decision.principal)   # raises StreamLimitExceeded: 429
    return Response(lease.guard(body), ...)

Credential sources: `AUTH_USERNAME`/`AUTH_PASSWORD` (one user, the namespaces of `AUTH_NAMESPACES`,
else `NAMESPACE` only), the file named by `AUTH_FILE` (many users and bearer tokens, each with its
namespaces) and CI jobs' OIDC tokens under the rules of `OIDC_CONFIG`; both files are read again
when they change (`shared.watched_files`).
There are no default credentials: with none configured every request is refused with 503 and the
log says why. Details and settings: docs/security.md.
"""

from shared.auth.authenticator import Authenticator
from shared.auth.decision import Decision, Principal
from shared.auth.streams import StreamLease, StreamLimiter, StreamLimitExceeded

__all__ = ["Authenticator", "Decision", "Principal", "StreamLease", "StreamLimitExceeded", "StreamLimiter"]
