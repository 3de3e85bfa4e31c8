"""Fakes of the metadata APIs the connectivity probes call. Facts: DESIGN.md §5 "Connectivity probes".

Every class serves the probe's path under its own root, so `base_url=fake.url` replaces the public host.
Common modes: good, bad_key, quota, slow, down; extra ones are listed per class.
"""
from __future__ import annotations

import gzip
import json
import time
from datetime import datetime, timezone
from typing import Any

from .base import FakeServer, Reply, Request, Route, html_reply, json_reply, text_reply


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeTMDB(FakeServer):
    """`FakeTMDB(api_key="tmdb-v3", bearer="tmdb-v4")`: `GET /3/configuration`, v3 `?api_key=` or v4 Bearer.

    Errors carry TMDB's body `{status_code, status_message, success: false}`: 7 invalid key (401),
    10 suspended (401, mode `suspended`), 9 offline (503, mode `down`), 25 over limit (429 + Retry-After).
    """

    name = "tmdb"

    def __init__(self, api_key: str = "tmdb-v3", bearer: str = "tmdb-v4", **kw: Any) -> None:
        self.api_key, self.bearer = api_key, bearer
        super().__init__(**kw)

    def routes(self) -> list[Route]:
        return [("GET", r"/3/configuration", self.configuration)]

    @staticmethod
    def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
        return json_reply(status, {"status_code": code, "status_message": message, "success": False}, headers)

    def before(self, req: Request) -> Reply | None:
        if req.mode == "down":
            return self._error(503, 9, "Service offline - try again later.")
        if req.mode == "quota":
            return self._error(429, 25, "Your request count (41) is over the allowed limit of (40).",
                               {"Retry-After": "10"})
        return None

    def configuration(self, req: Request) -> Reply:
        given_v3, given_v4 = req.query.get("api_key"), req.bearer()
        if req.mode == "bad_key" or (given_v3 != self.api_key and given_v4 != self.bearer):
            return self._error(401, 7, "Invalid API key: You must be granted a valid key.")
        if req.mode == "suspended":
            return self._error(401, 10, "Suspended API key: Access to your account has been suspended, contact TMDB.")
        return json_reply(200, {
            "images": {"base_url": "http://image.tmdb.org/t/p/", "secure_base_url": "https://image.tmdb.org/t/p/",
                       "backdrop_sizes": ["w300", "w780", "w1280", "original"],
                       "poster_sizes": ["w92", "w154", "w185", "w342", "w500", "w780", "original"],
                       "logo_sizes": ["w45", "w92", "original"], "profile_sizes": ["w45", "h632", "original"],
                       "still_sizes": ["w92", "w300", "original"]},
            "change_keys": ["adult", "air_date", "also_known_as", "biography", "images", "overview", "title"],
        })


class FakeOMDb(FakeServer):
    """`FakeOMDb(api_key="omdb-key", bad_key_status=401, quota_status=401)`: `GET /?apikey=K&i=tt0111161`.

    OMDb reports errors in the body (`{"Response":"False","Error":...}`); the HTTP status of a bad key
    differs between deployments (401 or 200), hence `bad_key_status`. Quota: "Request limit reached!".
    Mode `down`: 503 HTML page from the CDN in front of it.
    """

    name = "omdb"

    def __init__(self, api_key: str = "omdb-key", bad_key_status: int = 401, quota_status: int = 401,
                 **kw: Any) -> None:
        self.api_key, self.bad_key_status, self.quota_status = api_key, bad_key_status, quota_status
        super().__init__(**kw)

    def routes(self) -> list[Route]:
        return [("GET", r"/", self.lookup)]

    def before(self, req: Request) -> Reply | None:
        if req.mode == "down":
            return html_reply(503, "Service Unavailable")
        return None

    def lookup(self, req: Request) -> Reply:
        key = req.query.get("apikey")
        if not key:
            return json_reply(401, {"Response": "False", "Error": "No API key provided."})
        if key != self.api_key or req.mode == "bad_key":
            return json_reply(self.bad_key_status, {"Response": "False", "Error": "Invalid API key!"})
        if req.mode == "quota":
            return json_reply(self.quota_status, {"Response": "False", "Error": "Request limit reached!"})
        if req.query.get("i") != "tt0111161":
            return json_reply(200, {"Response": "False", "Error": "Incorrect IMDb ID."})
        return json_reply(200, {
            "Title": "The Shawshank Redemption", "Year": "1994", "Rated": "R", "Released": "14 Oct 1994",
            "Runtime": "142 min", "Genre": "Drama", "Director": "Frank Darabont", "imdbID": "tt0111161",
            "imdbRating": "9.3", "Type": "movie", "Response": "True",
        })


class FakeMDBList(FakeServer):
    """`FakeMDBList(api_key="mdbl-key", bad_key_status=401)`: `GET /user?apikey=K` → the account's limits.

    Good answers carry `X-RateLimit-Limit` / `X-RateLimit-Remaining` (= api_requests - api_requests_count);
    a bad key answers `{"error": "Invalid API key!", "response": false}`; quota → 429 "API Limit Reached!".
    """

    name = "mdblist"

    def __init__(self, api_key: str = "mdbl-key", bad_key_status: int = 401, **kw: Any) -> None:
        self.api_key, self.bad_key_status = api_key, bad_key_status
        self.api_requests, self.api_requests_count = 1000, 12
        super().__init__(**kw)

    def routes(self) -> list[Route]:
        return [("GET", r"/user/?", self.user)]

    def before(self, req: Request) -> Reply | None:
        return html_reply(503, "Service Unavailable") if req.mode == "down" else None

    def user(self, req: Request) -> Reply:
        if req.query.get("apikey") != self.api_key or req.mode == "bad_key":
            return json_reply(self.bad_key_status, {"error": "Invalid API key!", "response": False})
        if req.mode == "quota":
            return json_reply(429, {"error": "API Limit Reached!", "response": False},
                              {"X-RateLimit-Limit": str(self.api_requests), "X-RateLimit-Remaining": "0"})
        remaining = max(self.api_requests - self.api_requests_count, 0)
        return json_reply(200, {
            "api_requests": self.api_requests, "api_requests_count": self.api_requests_count,
            "user_id": 1, "patron_status": "active", "username": "u",
            "limits": {"api_requests": self.api_requests, "items": 1000, "lists": 10},
        }, {"X-RateLimit-Limit": str(self.api_requests), "X-RateLimit-Remaining": str(remaining)})


class FakeTrakt(FakeServer):
    """`FakeTrakt(client_id="trakt-id")`: `GET /movies/trending?limit=1` with `trakt-api-key` + `trakt-api-version: 2`.

    403 = invalid key or unapproved app; 429 with `Retry-After` and the JSON `X-Ratelimit` header
    (remaining 0). The fake is strict about `trakt-api-version: 2` (400 otherwise) so probes send it.
    """

    name = "trakt"

    def __init__(self, client_id: str = "trakt-id", **kw: Any) -> None:
        self.client_id = client_id
        super().__init__(**kw)

    def routes(self) -> list[Route]:
        return [("GET", r"/movies/trending", self.trending)]

    @staticmethod
    def _ratelimit(remaining: int) -> dict[str, str]:
        until = _iso(time.time() + 300)
        return {"X-Ratelimit": json.dumps({"name": "UNAUTHED_API_GET_LIMIT", "period": 300, "limit": 1000,
                                           "remaining": remaining, "until": until})}

    def before(self, req: Request) -> Reply | None:
        if req.mode == "down":
            return html_reply(503, "Server Unavailable - server overloaded (try again in 30s)")
        return None

    def trending(self, req: Request) -> Reply:
        if req.headers.get("trakt-api-key") != self.client_id or req.mode == "bad_key":
            return Reply(403)
        if req.headers.get("trakt-api-version") != "2":
            return text_reply(400, "Bad Request - request couldn't be parsed")
        if req.mode == "quota":
            return Reply(429, b"", {"Retry-After": "2", **self._ratelimit(0)})
        limit = max(int(req.query.get("limit") or 10), 1)
        movies = [{"watchers": 3, "movie": {"title": "Dune: Part Two", "year": 2024,
                                            "ids": {"trakt": 1, "slug": "dune-part-two-2024", "imdb": "tt15239678",
                                                    "tmdb": 693134}}}] * min(limit, 1)
        return json_reply(200, movies, {
            "X-Pagination-Page": "1", "X-Pagination-Limit": str(limit),
            "X-Pagination-Page-Count": "100", "X-Pagination-Item-Count": "100", **self._ratelimit(999),
        })


class FakeOpenAI(FakeServer):
    """`FakeOpenAI(api_key="sk-test")`: `GET /v1/models` with a Bearer key.

    401 `invalid_api_key`; mode `quota` → 429 `insufficient_quota` (budget spent); mode `rate_limited`
    → 429 `rate_limit_exceeded` with `retry-after`; mode `down` → 503 `server_error`.
    """

    name = "openai"

    def __init__(self, api_key: str = "sk-test", **kw: Any) -> None:
        self.api_key = api_key
        super().__init__(**kw)

    def routes(self) -> list[Route]:
        return [("GET", r"/v1/models", self.models)]

    @staticmethod
    def _error(status: int, message: str, type_: str, code: str | None,
               headers: dict[str, str] | None = None) -> Reply:
        return json_reply(status, {"error": {"message": message, "type": type_, "param": None, "code": code}}, headers)

    def before(self, req: Request) -> Reply | None:
        if req.mode == "down":
            return self._error(503, "The server is overloaded or not ready yet.", "server_error", None)
        return None

    def models(self, req: Request) -> Reply:
        key = req.bearer()
        if not key:
            return self._error(401, "You didn't provide an API key. You need to provide your API key in an "
                               "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                               "invalid_request_error", None)
        if key != self.api_key or req.mode == "bad_key":
            masked = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "sk-***"
            return self._error(401, f"Incorrect API key provided: {masked}. You can find your API key at "
                               "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                               "invalid_api_key")
        if req.mode == "quota":
            return self._error(429, "You exceeded your current quota, please check your plan and billing details.",
                               "insufficient_quota", "insufficient_quota")
        if req.mode == "rate_limited":
            return self._error(429, "Rate limit reached for requests. Please try again in 1s.", "requests",
                               "rate_limit_exceeded", {"retry-after": "1", "x-ratelimit-limit-requests": "10000",
                                                       "x-ratelimit-remaining-requests": "0",
                                                       "x-ratelimit-reset-requests": "1s"})
        created = 1721172741
        return json_reply(200, {"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": created, "owned_by": "system"},
            {"id": "text-embedding-3-small", "object": "model", "created": created, "owned_by": "system"},
        ]}, {"x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9999",
             "x-ratelimit-reset-requests": "6ms", "x-request-id": "req_fake"})


class FakeAniDB(FakeServer):
    """`FakeAniDB(client="caretaker", clientver="1", flood_seconds=None, compress=True)`: AniDB HTTP API.

    `GET /httpapi?request=hotanime&client=C&clientver=V&protover=1` → 200 XML `<hotanime>`. Errors also
    come as 200 XML: unknown client → `<error code="302">client version missing or invalid</error>`,
    banned (mode `quota`/`banned`, or a request within `flood_seconds` of the previous one) →
    `<error code="500">banned</error>`. Bodies are gzip'd with `Content-Encoding: gzip` like the real
    server. `request_times` (base) lets a test assert the probe asked rarely.
    """

    name = "anidb"

    def __init__(self, client: str = "caretaker", clientver: str = "1", flood_seconds: float | None = None,
                 compress: bool = True, **kw: Any) -> None:
        self.client, self.clientver = client, clientver
        self.flood_seconds, self.compress = flood_seconds, compress
        super().__init__(**kw)

    def routes(self) -> list[Route]:
        return [("GET", r"/httpapi", self.httpapi)]

    def _xml(self, body: str) -> Reply:
        data = ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()
        headers = {"Content-Type": "text/xml; charset=UTF-8"}
        if self.compress:
            data, headers["Content-Encoding"] = gzip.compress(data), "gzip"
        return Reply(200, data, headers)

    def before(self, req: Request) -> Reply | None:
        return html_reply(503, "Service Unavailable") if req.mode == "down" else None

    def _flooding(self) -> bool:
        with self._lock:  # the base appended this request's time already; compare with the one before
            times = self.request_times[-2:]
        return self.flood_seconds is not None and len(times) == 2 and times[1] - times[0] < self.flood_seconds

    def httpapi(self, req: Request) -> Reply:
        if req.mode in ("quota", "banned") or self._flooding():
            return self._xml('<error code="500">banned</error>')
        q = req.query
        if (q.get("client") != self.client or q.get("clientver") != self.clientver or req.mode == "bad_key"
                or q.get("protover") != "1"):
            return self._xml('<error code="302">client version missing or invalid</error>')
        if q.get("request") != "hotanime":
            return self._xml("<error>unknown request</error>")  # the fake's own wording; probes only send hotanime
        return self._xml(
            '<hotanime>\n'
            '  <anime id="1" restricted="false"><episodecount>26</episodecount>'
            '<startdate>1998-04-03</startdate><enddate>1999-04-24</enddate>'
            '<title xml:lang="en" type="official">Cowboy Bebop</title>'
            '<ratings><permanent count="50000">8.77</permanent></ratings></anime>\n'
            '</hotanime>')
