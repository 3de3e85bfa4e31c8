"""Read-only JSON calls to an app's or a media server's own API, for the profile-driven probes.

Requests go only to the configured service's `url` (never to a URL found in a database), with the key in a
header, never in the query string, so neither logs nor error messages can carry it. Auth schemes: bearer
(`Authorization: Bearer K`), Jellyfin's `Authorization: MediaBrowser Token="K"` and Emby's `X-Emby-Token: K`
(DESIGN.md §5 "jellyfin").
"""

from __future__ import annotations

from typing import Any

import httpx

from agent.config import ServiceConfig


class ApiError(Exception):
    """A call that gave no usable answer; the message names the path and the status, never the key."""


def service_key(service: ServiceConfig) -> str | None:
    """The credential for the app's admin API: `admin_token` when set, else `api_key`."""
    secret = service.admin_token or service.api_key
    return secret.get_secret_value() if secret is not None else None


def auth_headers(auth: str, key: str | None) -> dict[str, str]:
    if key is None or auth == "none":
        return {}
    if auth == "bearer":
        return {"Authorization": f"Bearer {key}"}
    if auth == "mediabrowser":
        return {"Authorization": f'MediaBrowser Token="{key}"'}
    if auth == "x-emby-token":
        return {"X-Emby-Token": key}
    raise ValueError(f"unknown auth scheme {auth!r}")


def media_auth(server: ServiceConfig, kind_auth: str) -> str:
    """The auth scheme for a media server: Emby's `X-Emby-Token`, else the profile's (`mediabrowser`)."""
    return "x-emby-token" if server.kind == "emby" else kind_auth


async def call_json(http: httpx.AsyncClient, service: ServiceConfig, method: str, path: str, *, auth: str,
                    params: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """`method path` on the service; the decoded JSON answer. Raises ApiError for a failed request, a
    non-2xx status or a body that is not JSON."""
    url = (service.url or "").rstrip("/") + path
    headers = {"Accept": "application/json", **auth_headers(auth, service_key(service))}
    try:
        response = await http.request(method, url, params=params, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise ApiError(f"{service.name}: {method} {path} timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise ApiError(f"{service.name}: {method} {path} failed: {type(exc).__name__}") from None
    if response.status_code in (401, 403):
        raise ApiError(f"{service.name}: {method} {path} answered {response.status_code}: the key was refused")
    if not response.is_success:
        raise ApiError(f"{service.name}: {method} {path} answered {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise ApiError(f"{service.name}: {method} {path} did not answer JSON") from None


def dig(data: Any, dotted: str) -> Any:
    """The value at a dotted path ("a.b.0"); "" is `data` itself. Raises ApiError naming the path."""
    for part in filter(None, dotted.split(".")):
        try:
            data = data[int(part)] if isinstance(data, list) else data[part]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ApiError(f"no {dotted!r} in the answer") from None
    return data
