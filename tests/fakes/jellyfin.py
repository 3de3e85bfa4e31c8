"""FakeJellyfin: answers like Jellyfin 10.10–12.0 (or Emby with `emby=True`). Facts: DESIGN.md §5 "jellyfin".

Modes: good, bad_key (every token 401), quota (429, as a reverse proxy would: Jellyfin has no quota),
slow, down (503 everywhere; /health says Unhealthy), starting (10.10/10.11 start-up: 503 except
/health [Unhealthy 503] and /System/Info/Public), degraded (/health `Degraded` 200, rest normal).
"""
from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

from .base import FakeServer, Reply, Request, Route, json_reply, text_reply

_PAIR = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_TIME = re.compile(r"(\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d)?)?)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
EMPTY_ID = "0" * 32


def jf_time(epoch: float) -> str:
    """.NET round-trip format ("O") with 7 fractional digits, as Jellyfin's JSON date converter writes."""
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 date as clients send in `minDate` (any fraction, Z or offset)."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"bad date {text!r}")
    frac = (m.group(2) or ".0")[1:7].ljust(6, "0")  # .NET sends 7 digits; Python takes at most 6
    tz = m.group(3) or "Z"
    dt = datetime.fromisoformat(f"{m.group(1)}.{frac}" if "T" in m.group(1) or " " in m.group(1) else m.group(1))
    offset = timezone.utc if tz == "Z" else datetime.strptime(tz.replace(":", ""), "%z").tzinfo
    return dt.replace(tzinfo=offset).timestamp()


def guid(seed: str) -> str:
    """Stable 32-hex id, the dash-less GUID form Jellyfin uses in JSON."""
    return hashlib.md5(seed.encode()).hexdigest()


def make_task(name: str, key: str, category: str = "Library", state: str = "Idle",
              status: str | None = "Completed", error: str | None = None,
              ended: float | None = None, duration: float = 60.0) -> dict[str, Any]:
    """A `/ScheduledTasks` entry; `status=None` = never ran (no LastExecutionResult, as on a fresh server)."""
    task: dict[str, Any] = {"Name": name, "State": state, "Id": guid(key), "Key": key, "Category": category,
                            "Description": name, "IsHidden": False, "Triggers": []}
    if state == "Running":
        task["CurrentProgressPercentage"] = 42.0
    if status is not None:
        end = time.time() - 3600 if ended is None else ended
        task["LastExecutionResult"] = {
            "StartTimeUtc": jf_time(end - duration), "EndTimeUtc": jf_time(end), "Status": status,
            "Name": name, "Key": key, "Id": guid(key), "ErrorMessage": error, "LongErrorMessage": error,
        }
    return task


def make_activity(entry_id: int, name: str, type_: str = "TaskCompleted", severity: str = "Information",
                  when: float | None = None, overview: str | None = None) -> dict[str, Any]:
    """A `/System/ActivityLog/Entries` item (Severity Information|Warning|Error)."""
    return {"Id": entry_id, "Name": name, "ShortOverview": overview, "Overview": overview, "Type": type_,
            "Date": jf_time(time.time() if when is None else when), "UserId": EMPTY_ID, "Severity": severity}


def default_items() -> dict[str, dict[str, Any]]:
    return {
        guid("movie-1"): {"Name": "The Shawshank Redemption", "Type": "Movie", "Primary": "a1b2c3d4e5f60718",
                          "ProviderIds": {"Imdb": "tt0111161", "Tmdb": "278"}},
        guid("series-1"): {"Name": "Cowboy Bebop", "Type": "Series", "Primary": "0f1e2d3c4b5a6978",
                           "ProviderIds": {"Tvdb": "76885", "Imdb": "tt0213338"}},
        guid("movie-2"): {"Name": "No Poster Movie", "Type": "Movie", "Primary": None, "ProviderIds": {}},
    }


def _norm_id(item_id: str) -> str:
    return item_id.replace("-", "").lower()  # Jellyfin accepts GUIDs with or without dashes, any case


class FakeJellyfin(FakeServer):
    """`FakeJellyfin(api_key="jf-key", items=None, emby=False, user_token=None, port=0, tls=None)`.

    Attributes tests change: `items` {id: {"Name", "Type", "Primary": tag|None, "ProviderIds"?}},
    `tasks` (see make_task), `activity` (see make_activity), `libraries`, `version`,
    `has_pending_restart`. `user_token` is a non-admin user's token: 403 on admin endpoints.
    """

    name = "jellyfin"

    def __init__(self, api_key: str = "jf-key", items: dict[str, dict[str, Any]] | None = None,
                 emby: bool = False, user_token: str | None = None, port: int = 0,
                 tls: tuple[str, str] | None = None) -> None:
        self.api_key, self.user_token, self.emby = api_key, user_token, emby
        self.items = default_items() if items is None else items
        self.server_id = guid("server")
        self.version = "4.8.10.0" if emby else "10.10.7"
        self.product = "Emby Server" if emby else "Jellyfin Server"
        self.has_pending_restart = False
        self.libraries = [{"Name": "Movies", "CollectionType": "movies"},
                          {"Name": "Shows", "CollectionType": "tvshows"}]
        self.tasks = [
            make_task("Scan Media Library", "RefreshLibrary"),
            make_task("Clean Transcode Directory", "DeleteTranscodeFiles", "Maintenance"),
            make_task("Extract Chapter Images", "ChapterImagesTask"),
        ]
        self.activity = [make_activity(1, "Scan Media Library completed", when=time.time() - 3600)]
        super().__init__(port, tls)

    def routes(self) -> list[Route]:
        r: list[Route] = [
            ("GET", r"(?i)/System/Ping", self.ping),
            ("GET", r"(?i)/System/Info/Public", self.info_public),
            ("GET", r"(?i)/System/Info", self.info),
            ("GET", r"(?i)/ScheduledTasks", self.scheduled_tasks),
            ("GET", r"(?i)/System/ActivityLog/Entries", self.activity_log),
            ("GET", r"(?i)/Items", self.list_items),
            ("GET", r"(?i)/Items/(?P<id>[^/]+)/Images/Primary(?:/\d+)?", self.primary_image),
        ]
        return r if self.emby else [("GET", r"(?i)/health", self.health), *r]

    # -- modes and auth ------------------------------------------------------------------------
    def before(self, req: Request) -> Reply | None:
        path = req.path.lower()
        if req.mode in ("down", "starting"):
            if path == "/health" and not self.emby:
                return text_reply(503, "Unhealthy")
            if req.mode == "starting" and path == "/system/info/public":
                return None
            return text_reply(503, "Service Unavailable")
        return super().before(req)

    def _token(self, req: Request) -> str | None:
        names = ["authorization"] + (["x-emby-authorization"] if self.emby else [])
        for name in names:
            scheme, _, rest = req.headers.get(name, "").partition(" ")
            if scheme.lower() == "mediabrowser":
                pairs = {k.lower(): v for k, v in _PAIR.findall(rest)}
                if pairs.get("token"):
                    return pairs["token"]
        if self.emby and (req.headers.get("x-emby-token") or req.headers.get("x-mediabrowser-token")):
            return req.headers.get("x-emby-token") or req.headers.get("x-mediabrowser-token")
        # Jellyfin 12 with legacy auth off ignores X-Emby-Token: a request carrying only that is anonymous.
        return req.arg("ApiKey") or req.arg("api_key")

    def _deny(self, req: Request, admin: bool = False) -> Reply | None:
        """401 for a missing/bad token (all tokens in mode bad_key), 403 for a user token on admin paths."""
        token = self._token(req)
        if not token or req.mode == "bad_key" or token not in (self.api_key, self.user_token):
            return Reply(401)
        if admin and token != self.api_key:
            return Reply(403)
        return None

    # -- unauthenticated -----------------------------------------------------------------------
    def health(self, req: Request) -> Reply:
        return text_reply(200, "Degraded" if req.mode == "degraded" else "Healthy")

    def ping(self, req: Request) -> Reply:
        return json_reply(200, self.product)

    def info_public(self, req: Request) -> Reply:
        return json_reply(200, {"LocalAddress": self.url, "ServerName": "fake-media", "Version": self.version,
                                "ProductName": self.product, "OperatingSystem": "", "Id": self.server_id,
                                "StartupWizardCompleted": True})

    def primary_image(self, req: Request) -> Reply:
        # The ?tag= parameter is never compared: a stale tag still gets the current image (DESIGN §5).
        wanted = _norm_id(req.params["id"])
        item = self.items.get(wanted) or next((v for k, v in self.items.items() if _norm_id(k) == wanted), None)
        if not item or not item.get("Primary"):
            return Reply(404)
        return Reply(200, JPEG, {"Content-Type": "image/jpeg", "ETag": f'"{item["Primary"]}"'})

    # -- authenticated -------------------------------------------------------------------------
    def info(self, req: Request) -> Reply:
        if deny := self._deny(req):
            return deny
        return json_reply(200, {"ServerName": "fake-media", "Version": self.version, "Id": self.server_id,
                                "ProductName": self.product, "OperatingSystem": "Linux",
                                "OperatingSystemDisplayName": "Linux", "HasPendingRestart": self.has_pending_restart,
                                "IsShuttingDown": False, "StartupWizardCompleted": True,
                                "HasUpdateAvailable": False, "LocalAddress": self.url,
                                "CanSelfRestart": True, "WebSocketPortNumber": self.port})

    def scheduled_tasks(self, req: Request) -> Reply:
        return self._deny(req, admin=True) or json_reply(200, self.tasks)

    def activity_log(self, req: Request) -> Reply:
        if deny := self._deny(req, admin=True):
            return deny
        entries = sorted(self.activity, key=lambda e: parse_time(e["Date"]), reverse=True)
        if min_date := req.arg("minDate"):
            since = parse_time(min_date)
            entries = [e for e in entries if parse_time(e["Date"]) >= since]
        return self._page(req, entries)

    def list_items(self, req: Request) -> Reply:
        if deny := self._deny(req):
            return deny
        if (req.arg("Recursive") or "").lower() != "true":
            # Without Recursive=true the server lists the root's children: the libraries, not the items.
            folders = [{"Name": lib["Name"], "ServerId": self.server_id, "Id": guid("lib:" + lib["Name"]),
                        "Type": "CollectionFolder", "CollectionType": lib["CollectionType"], "IsFolder": True,
                        "ImageTags": {}, "BackdropImageTags": []} for lib in self.libraries]
            return self._page(req, folders)
        types = {t.strip().lower() for t in (req.arg("IncludeItemTypes") or "").split(",") if t.strip()}
        fields = {f.strip().lower() for f in (req.arg("Fields") or "").split(",")}
        # Filter on the live `items` (tests change it between requests), but build JSON objects only for
        # the page asked for: building all of a 27 000-item library took 0.4 s per page.
        matching = [(i, item) for i, item in self.items.items() if not types or item["Type"].lower() in types]
        return self._page(req, matching, lambda pair: self._item_json(*pair, fields))

    def _item_json(self, item_id: str, item: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"Name": item["Name"], "ServerId": self.server_id, "Id": item_id,
                               "Type": item["Type"], "IsFolder": item["Type"] == "Series",
                               "ImageTags": {"Primary": item["Primary"]} if item.get("Primary") else {},
                               "BackdropImageTags": []}
        if "providerids" in fields:
            row["ProviderIds"] = dict(item.get("ProviderIds", {}))
        return row

    @staticmethod
    def _page(req: Request, rows: list[Any], to_json: Callable[[Any], Any] = lambda row: row) -> Reply:
        """One page (`StartIndex`, `Limit`) of `rows`, each turned into JSON by `to_json`."""
        start = max(int(req.arg("StartIndex") or 0), 0)
        limit = req.arg("Limit")
        page = rows[start:start + int(limit)] if limit else rows[start:]
        return json_reply(200, {"Items": [to_json(r) for r in page], "TotalRecordCount": len(rows),
                                "StartIndex": start})
