"""Fakes of the media apps' own HTTP APIs. Facts: DESIGN.md §5 profiles aperture, aphrodite, tsundoku.

Common modes: good, bad_key (the configured token is refused), quota (429), slow, down (503: the app
is up but its database is not).
"""
from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .base import FakeServer, Reply, Request, Route, json_reply


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeAperture(FakeServer):
    """`FakeAperture(token=None)`. Running jobs live only in Aperture's memory, so its API is the truth.

    `GET /health` → 200 `{"status":"ok"}` / 503 `{"status":"error","database":"disconnected"}` (mode down).
    `GET /api/jobs/active` → `[{jobName, startedAt, progress}]` from `active_jobs`, a list of
    `{"job_name": str, "started_at": epoch seconds, "progress"?: dict}`.
    `POST /api/jobs/{name}/cancel` → 200 `{"cancelled": true, "jobName"}` and removes it; 404 if not running.
    `POST /api/jobs/{name}/run` → 202 `{"started": true, "jobName"}`; 409 when already running.
    With `token` set, the /api paths need `Authorization: Bearer TOKEN` (401 otherwise).
    """

    name = "aperture"

    def __init__(self, token: str | None = None, **kw: Any) -> None:
        self.token = token
        self.active_jobs: list[dict[str, Any]] = []
        super().__init__(**kw)

    def routes(self) -> list[Route]:
        return [("GET", r"/health", self.health),
                ("GET", r"/api/jobs/active", self.jobs_active),
                ("POST", r"/api/jobs/(?P<name>[^/]+)/cancel", self.cancel),
                ("POST", r"/api/jobs/(?P<name>[^/]+)/run", self.run)]

    def before(self, req: Request) -> Reply | None:
        if req.mode == "down":
            if req.path == "/health":
                return json_reply(503, {"status": "error", "database": "disconnected"})
            return json_reply(503, {"error": "Service unavailable"})
        if req.mode == "quota":
            return json_reply(429, {"error": "Too many requests"}, {"Retry-After": "10"})
        if req.path.startswith("/api/") and self.token is not None:
            if req.bearer() != self.token or req.mode == "bad_key":
                return json_reply(401, {"error": "Unauthorized"})
        return None

    def health(self, req: Request) -> Reply:
        return json_reply(200, {"status": "ok"})

    def jobs_active(self, req: Request) -> Reply:
        with self._lock:
            jobs = list(self.active_jobs)
        return json_reply(200, [{"jobName": j["job_name"], "startedAt": _iso(j["started_at"]),
                                 "progress": j.get("progress", {"current": 0, "total": 0, "percent": 0})}
                                for j in jobs])

    def cancel(self, req: Request) -> Reply:
        name = req.params["name"]
        with self._lock:
            found = [j for j in self.active_jobs if j["job_name"] == name]
            self.active_jobs[:] = [j for j in self.active_jobs if j["job_name"] != name]
        if not found:
            return json_reply(404, {"error": f"No active job named {name}"})
        return json_reply(200, {"cancelled": True, "jobName": name})

    def run(self, req: Request) -> Reply:
        name = req.params["name"]
        with self._lock:
            if any(j["job_name"] == name for j in self.active_jobs):
                return json_reply(409, {"error": f"Job {name} is already running"})
            self.active_jobs.append({"job_name": name, "started_at": time.time()})
        return json_reply(202, {"started": True, "jobName": name})


class FakeAphrodite(FakeServer):
    """`FakeAphrodite()`: `GET /api/health` → 200 `{"status":"healthy"}`; 503 `{"status":"unhealthy"}` when down."""

    name = "aphrodite"

    def routes(self) -> list[Route]:
        return [("GET", r"/api/health", self.health)]

    def before(self, req: Request) -> Reply | None:
        if req.mode == "down":
            return json_reply(503, {"status": "unhealthy", "database": "disconnected"})
        return super().before(req)

    def health(self, req: Request) -> Reply:
        return json_reply(200, {"status": "healthy"})


class FakeTsundoku(FakeServer):
    """`FakeTsundoku(token="tsu-token", db_path=None, cover_dir=None)`: Tsundoku's health and admin API.

    `GET /api/v1/health` 200 `{"status":"ok"}` / 503 (mode down). Admin paths need `Authorization:
    Bearer TOKEN` (401 missing, 403 wrong): `POST /api/v1/series/invalidate-metadata-hashes` (runs the
    real UPDATE on `db_path`'s `series` table, skipping manual rows), `POST /api/v1/series/refresh-all`
    (`triggered: false` while `busy`), `POST /api/v1/covers/invalidate-cache` (deletes the regular files
    directly under `cover_dir`).
    """

    name = "tsundoku"

    def __init__(self, token: str = "tsu-token", db_path: str | Path | None = None,
                 cover_dir: str | Path | None = None, **kw: Any) -> None:
        self.token, self.db_path, self.cover_dir = token, db_path, cover_dir
        self.busy = False
        super().__init__(**kw)

    def routes(self) -> list[Route]:
        return [("GET", r"/api/v1/health", self.health),
                ("POST", r"/api/v1/series/invalidate-metadata-hashes", self.invalidate_hashes),
                ("POST", r"/api/v1/series/refresh-all", self.refresh_all),
                ("POST", r"/api/v1/covers/invalidate-cache", self.invalidate_covers)]

    def before(self, req: Request) -> Reply | None:
        if req.mode == "down":
            return json_reply(503, {"status": "error", "database": "unavailable"})
        if req.mode == "quota":
            return json_reply(429, {"error": "Too many requests"}, {"Retry-After": "10"})
        if req.path != "/api/v1/health":
            token = req.bearer()
            if token is None:
                return json_reply(401, {"error": "Unauthorized"})
            if token != self.token or req.mode == "bad_key":
                return json_reply(403, {"error": "Forbidden"})
        return None

    def health(self, req: Request) -> Reply:
        return json_reply(200, {"status": "ok"})

    def _manual_count(self, db: sqlite3.Connection) -> int:
        return db.execute("SELECT count(*) FROM series WHERE metadata_source = 'manual'").fetchone()[0]

    def invalidate_hashes(self, req: Request) -> Reply:
        if self.db_path is None:
            return json_reply(200, {"invalidated": 0, "skippedManual": 0})
        db = sqlite3.connect(self.db_path, timeout=5)
        try:
            with db:
                cur = db.execute("UPDATE series SET metadata_hash = NULL WHERE metadata_source <> 'manual'")
                invalidated, manual = cur.rowcount, self._manual_count(db)
        finally:
            db.close()
        return json_reply(200, {"invalidated": invalidated, "skippedManual": manual})

    def refresh_all(self, req: Request) -> Reply:
        skipped = 0
        if self.db_path is not None:
            db = sqlite3.connect(self.db_path, timeout=5)
            try:
                skipped = self._manual_count(db)
            finally:
                db.close()
        return json_reply(200, {"triggered": not self.busy, "skipped": skipped, "batchSize": 50,
                                "minAgeDays": 7, "provider": "mangadex"})

    def invalidate_covers(self, req: Request) -> Reply:
        deleted = freed = 0
        if self.cover_dir is not None and Path(self.cover_dir).is_dir():
            for entry in Path(self.cover_dir).iterdir():
                if entry.is_file() and not entry.is_symlink():
                    freed += entry.stat().st_size
                    entry.unlink()
                    deleted += 1
        return json_reply(200, {"filesDeleted": deleted, "bytesFreed": freed})
