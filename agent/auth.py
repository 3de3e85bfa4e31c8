"""Admin bearer-token checks for the HTTP API (DESIGN.md §9): 401 without, 403 wrong, 503 unconfigured."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


def bearer_token(request: Request) -> str:
    """The token of the request's ``Authorization: Bearer …`` header (stripped), or "" when there is none."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def check_token(request: Request, *, mutating: bool) -> None:
    """Raise HTTPException unless the request carries the configured admin token.

    Without a configured token, mutating endpoints answer 503 and read endpoints are open (the agent
    refuses to listen beyond loopback without a token). The comparison is constant-time (hmac).
    """
    configured = request.app.state.admin_token
    if configured is None:
        if mutating:
            raise HTTPException(503, "no admin token is configured (agent.admin_token or agent.admin_token_file)")
        return
    given = bearer_token(request)
    if not given:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode(), configured.encode()):
        raise HTTPException(403, "invalid token")


def admin_read(request: Request) -> None:
    check_token(request, mutating=False)


def admin_write(request: Request) -> None:
    check_token(request, mutating=True)
