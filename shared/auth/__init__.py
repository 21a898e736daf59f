"""Who may call the protected endpoints.

The functions use only this surface:

    authenticator = Authenticator.from_env()
    decision = authenticator.authenticate(request.headers.get("Authorization"), client_address)
    if not decision.ok: respond decision.status with decision.error and decision.headers
    if not decision.principal.may_read(namespace): 403

Credential sources: `AUTH_USERNAME`/`AUTH_PASSWORD` (one user, every namespace). There are no
default credentials: with none configured every request is refused with 503 and the log says why.
"""

from shared.auth.authenticator import Authenticator, Decision, Principal

__all__ = ["Authenticator", "Decision", "Principal"]
