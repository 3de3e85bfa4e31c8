"""Per-API tables of the service probe: what to ask each kind and how to read its answer (DESIGN.md §5).

A `Preset` says where a kind lives, which unauthenticated health paths come first (media servers), the
request that decides the outcome, how credentials travel, and a `read` hook for the APIs that report a
bad key or a spent quota in the body. Everything here is a pure function of the config or of an
`httpx.Response`, so tests can feed answers directly; the I/O lives in `agent.probes.services`.

Every answer becomes exactly one `Verdict(outcome, detail)`, the outcome one of `OUTCOMES`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from agent.config import HttpExpect, ServiceConfig

OUTCOMES = ("ok", "auth_error", "rate_limited", "server_error", "timeout", "network_error")
# Outcomes that mean the service itself is not answering properly (service_up 0). A rejected key or a
# rate limit comes from a service that is up.
DOWN_OUTCOMES = frozenset({"server_error", "timeout", "network_error"})


@dataclass(frozen=True)
class Verdict:
    """The classification of one answer: `outcome` in OUTCOMES, `detail` a short reason without secrets."""

    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class Parts:
    """Headers and query parameters to add to a request."""

    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """How to probe one kind.

    `health`: unauthenticated up checks tried in order, the next only when the previous path is 404.
    `path`: the request whose answer is the outcome ("" = the configured URL itself, kind http).
    `auth(cfg)`: the credentials to send, or None when the kind (or this config) sends none.
    `fixed`: headers/params every request of the main step carries.
    `read(response)`: a Verdict from the body, or None to judge by the status code alone.
    `min_interval`: the probe never asks more often than this, whatever the config says.
    """

    default_url: str | None = None
    health: tuple[str, ...] = ()
    path: str = ""
    auth: Callable[[ServiceConfig], Parts | None] | None = None
    fixed: Parts = Parts()
    read: Callable[[httpx.Response], Verdict | None] | None = None
    min_interval: float = 0.0


def _key(cfg: ServiceConfig) -> str:
    return cfg.api_key.get_secret_value() if cfg.api_key is not None else ""


def _bearer(cfg: ServiceConfig) -> Parts | None:
    return Parts(headers={"Authorization": f"Bearer {_key(cfg)}"}) if cfg.api_key is not None else None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _clip(text: object, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _vendor_error(vendor: str, text: str) -> Verdict:
    """An error message an API put in its body: quota, key, or something else."""
    low = text.lower()
    if "limit" in low or "quota" in low:
        return Verdict("rate_limited", f"quota spent ({vendor}: {_clip(text)})")
    if "key" in low:
        return Verdict("auth_error", f"invalid API key ({vendor}: {_clip(text)})")
    return Verdict("server_error", f"{vendor} error: {_clip(text)}")


# -- readers: facts from DESIGN.md §5 "Connectivity probes" --------------------------------------------------

# TMDB error bodies carry {status_code, status_message} (developer.themoviedb.org/docs/errors).
_TMDB_CODES = {
    3: ("auth_error", "authentication failed"),
    7: ("auth_error", "invalid API key"),
    10: ("auth_error", "API key suspended"),
    9: ("server_error", "service offline"),
    25: ("rate_limited", "over the request limit"),
}


def _read_tmdb(response: httpx.Response) -> Verdict | None:
    body = _json(response)
    code = body.get("status_code") if isinstance(body, dict) and not response.is_success else None
    if code not in _TMDB_CODES:
        return None
    outcome, meaning = _TMDB_CODES[code]
    return Verdict(outcome, f"{meaning} (TMDB status_code {code})")


def _read_omdb(response: httpx.Response) -> Verdict | None:
    # OMDb answers a bad key with 401 or 200 depending on the deployment: the body decides.
    body = _json(response)
    if isinstance(body, dict) and body.get("Response") == "False":
        return _vendor_error("OMDb", str(body.get("Error", "")))
    return None


def _read_mdblist(response: httpx.Response) -> Verdict | None:
    body = _json(response)
    if isinstance(body, dict) and body.get("error"):
        return _vendor_error("MDBList", str(body["error"]))
    return None


def _read_trakt(response: httpx.Response) -> Verdict | None:
    if response.status_code == 403:  # Trakt: invalid API key or an app not approved yet
        return Verdict("auth_error", "invalid API key or unapproved app")
    return None


def _read_openai(response: httpx.Response) -> Verdict | None:
    # 429 is either a rate limit or, with insufficient_quota, a spent budget: both rate_limited, say which.
    if response.status_code != 429:
        return None
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "insufficient_quota" in (error.get("code"), error.get("type")):
        return Verdict("rate_limited", "quota spent (insufficient_quota)")
    return None


# AniDB answers errors as 200 with an XML body: <error code="500">banned</error> (wiki.anidb.net/HTTP_API_Definition).
_ANIDB_ERROR = re.compile(r'<error(?:\s+code="(\d+)")?\s*>([^<]*)</error>', re.IGNORECASE)


def _read_anidb(response: httpx.Response) -> Verdict | None:
    match = _ANIDB_ERROR.search(response.text[:4000])
    if match is None:
        return None
    code, text = match.group(1), _clip(match.group(2).strip())
    label = f"AniDB error {code}: {text}" if code else f"AniDB: {text}"
    if code in ("500", "555") or "banned" in text.lower():
        return Verdict("rate_limited", f"banned for asking too often ({label})")
    if code == "302" or "client" in text.lower():
        return Verdict("auth_error", f"client name or version not accepted ({label})")
    return Verdict("server_error", label)


def _read_app_health(response: httpx.Response) -> Verdict | None:
    # Aperture and Tsundoku answer 503 with {"database": "disconnected"} when their database is down.
    body = _json(response)
    if response.status_code >= 500 and isinstance(body, dict) and body.get("database"):
        return Verdict("server_error", f"database {_clip(body['database'], 40)}")
    return None


def _tmdb_auth(cfg: ServiceConfig) -> Parts:
    key = _key(cfg)
    # A v4 read access token is a JWT ("eyJ…" is base64 of '{"'): Bearer. A v3 key goes in the query.
    if key.startswith("eyJ"):
        return Parts(headers={"Authorization": f"Bearer {key}"})
    return Parts(params={"api_key": key})


PRESETS: dict[str, Preset] = {
    # Jellyfin: /health (Healthy|Degraded 200, Unhealthy 503); older servers and some proxies lack it,
    # then /System/Ping. Auth: `Authorization: MediaBrowser Token=…` — Jellyfin 12 rejects X-Emby-Token.
    "jellyfin": Preset(health=("/health", "/System/Ping"), path="/System/Info",
                       auth=lambda cfg: Parts(headers={"Authorization": f'MediaBrowser Token="{_key(cfg)}"'})),
    "emby": Preset(health=("/System/Ping",), path="/System/Info",
                   auth=lambda cfg: Parts(headers={"X-Emby-Token": _key(cfg)})),
    "tmdb": Preset("https://api.themoviedb.org", path="/3/configuration", auth=_tmdb_auth, read=_read_tmdb),
    "omdb": Preset("https://www.omdbapi.com", path="/", fixed=Parts(params={"i": "tt0111161"}),
                   auth=lambda cfg: Parts(params={"apikey": _key(cfg)}), read=_read_omdb),
    "mdblist": Preset("https://api.mdblist.com", path="/user",
                      auth=lambda cfg: Parts(params={"apikey": _key(cfg)}), read=_read_mdblist),
    # AniDB bans clients that ask too often ("not more than one page every two seconds"; the same dataset
    # several times a day "can get you banned"): never more often than hourly, whatever the config says.
    "anidb": Preset("http://api.anidb.net:9001", path="/httpapi",
                    fixed=Parts(params={"request": "hotanime", "protover": "1"}),
                    auth=lambda cfg: Parts(params={"client": cfg.client or "", "clientver": cfg.client_version or ""}),
                    read=_read_anidb, min_interval=3600.0),
    "trakt": Preset("https://api.trakt.tv", path="/movies/trending",
                    fixed=Parts(headers={"trakt-api-version": "2", "Content-Type": "application/json"},
                                params={"limit": "1"}),
                    auth=lambda cfg: Parts(headers={"trakt-api-key": _key(cfg)}), read=_read_trakt),
    "openai": Preset("https://api.openai.com", path="/v1/models", auth=_bearer, read=_read_openai),
    "aperture": Preset(path="/health", read=_read_app_health),
    "aphrodite": Preset(path="/api/health", read=_read_app_health),
    "tsundoku": Preset(path="/api/v1/health", read=_read_app_health),
    "http": Preset(auth=_bearer),
}


def base_url(cfg: ServiceConfig) -> str:
    """The configured URL, or the kind's public API."""
    return cfg.url or PRESETS[cfg.kind].default_url or ""  # config validation requires url where there is none


def join(base: str, path: str) -> str:
    return base.rstrip("/") + path if path else base


def by_status(response: httpx.Response) -> Verdict:
    """Classify by HTTP status alone: 2xx ok, 401/403 auth, 429 rate limit, anything else server_error."""
    code = response.status_code
    if response.is_success:
        return Verdict("ok")
    if code == 401:
        return Verdict("auth_error", "invalid API key")
    if code == 403:
        return Verdict("auth_error", "access denied: key invalid or without the rights needed")
    if code == 429:
        retry = response.headers.get("retry-after")
        return Verdict("rate_limited", "rate limited" + (f", retry after {_clip(retry, 20)}s" if retry else ""))
    return Verdict("server_error", "server error" if code >= 500 else "unexpected answer")


def judge(preset: Preset, response: httpx.Response) -> Verdict:
    """The Verdict of a preset's main request: the body reader first, then the status code."""
    return (preset.read(response) if preset.read else None) or by_status(response)


_MISSING = object()


def json_at(doc: Any, path: str) -> Any:
    """The value at a dotted path (`checks.0.status`), or `_MISSING`."""
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and re.fullmatch(r"-?\d+", part) and -len(doc) <= int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return _MISSING
    return doc


def judge_expect(expect: HttpExpect, response: httpx.Response, seconds: float) -> Verdict:
    """The Verdict of the generic http kind: status list, latency, JSON path (+ value), body regex, in that order."""
    if response.status_code not in expect.status:
        verdict = by_status(response)
        outcome = "server_error" if verdict.outcome == "ok" else verdict.outcome
        return Verdict(outcome, f"expected status {', '.join(map(str, expect.status))}")
    if expect.max_latency is not None and seconds > expect.max_latency:
        return Verdict("timeout", f"answered in {seconds:.2f}s, over max_latency {expect.max_latency:g}s")
    if expect.json_path is not None:
        value = json_at(_json(response), expect.json_path)
        if value is _MISSING:
            return Verdict("server_error", f"JSON path {expect.json_path} not found")
        if expect.json_value is not None and value != expect.json_value:
            return Verdict("server_error", f"JSON {expect.json_path} is {_clip(json.dumps(value), 40)}, expected "
                                           f"{_clip(json.dumps(expect.json_value, default=str), 40)}")
    if expect.body_regex is not None and not re.search(expect.body_regex, response.text):
        return Verdict("server_error", f"body does not match /{_clip(expect.body_regex, 40)}/")
    return Verdict("ok")


def rate_limit_remaining(headers: httpx.Headers) -> float | None:
    """Requests left from the API's headers: X-RateLimit-Remaining (MDBList and many others), OpenAI's
    x-ratelimit-remaining-requests, Trakt's X-Ratelimit JSON `{"remaining": …}`; None when not sent."""
    for name in ("x-ratelimit-remaining", "x-ratelimit-remaining-requests"):
        try:
            return float(headers[name])
        except (KeyError, ValueError):
            pass
    try:
        remaining = json.loads(headers["x-ratelimit"])["remaining"]
        return float(remaining)
    except (KeyError, ValueError, TypeError):
        return None
