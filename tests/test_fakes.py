"""The fakes answer as DESIGN.md §5 documents: status, JSON shape, auth rejection, modes, lifecycle."""
from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes import (FakeAniDB, FakeAperture, FakeAphrodite, FakeJellyfin, FakeMDBList, FakeOMDb, FakeOpenAI,
                   FakeTMDB, FakeTrakt, FakeTsundoku, make_task)
from fakes.certs import make_self_signed
from receivers import wait_until

MB = {"Authorization": 'MediaBrowser Token="jf-key"'}


def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def jf() -> Iterator[FakeJellyfin]:
    with FakeJellyfin(user_token="user-tok") as fake:
        yield fake


# -- base: lifecycle, modes, TLS -------------------------------------------------------------------
def test_restart_same_port_and_stop_refuses() -> None:
    fake = FakeAphrodite().start()
    try:
        port = fake.port
        assert httpx.get(f"{fake.url}/api/health").json() == {"status": "healthy"}
        fake.stop()
        assert refused(port)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/api/health")
        fake.restart()
        assert fake.port == port and httpx.get(f"{fake.url}/api/health").status_code == 200
        assert [(m, p) for m, p, _ in fake.requests] == [("GET", "/api/health")] * 2
        fake.mode = "down"
        assert httpx.get(f"{fake.url}/api/health").status_code == 503
        fake.mode = "quota"
        assert httpx.get(f"{fake.url}/api/health").status_code == 429
    finally:
        fake.stop()
    assert refused(port)


def test_slow_mode_delays_and_stop_never_hangs() -> None:
    with FakeAphrodite() as fake:
        fake.mode, fake.slow_seconds = "slow", 0.3
        t0 = time.monotonic()
        assert httpx.get(f"{fake.url}/api/health").status_code == 200
        assert time.monotonic() - t0 >= 0.3
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{fake.url}/api/health", timeout=0.2)
        fake.slow_seconds = 30
        errors: list[Exception] = []

        def call() -> None:
            try:
                httpx.get(f"{fake.url}/api/health", timeout=10)
            except Exception as exc:  # the hang-up is the expected outcome
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(lambda: len(fake.requests) >= 3, 5, "the slow request to arrive", interval=0.01)
        t0 = time.monotonic()
        fake.stop()
        caller.join(timeout=5)
        assert time.monotonic() - t0 < 2 and not caller.is_alive() and errors


def test_tls_with_self_signed_cert(tmp_path: Path) -> None:
    cert, key, not_after = make_self_signed(tmp_path, days=10)
    assert abs(not_after - (time.time() + 10 * 86400)) < 60
    with FakeAphrodite(tls=(cert, key)) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=cert)
        assert httpx.get(f"{fake.url}/api/health", verify=ctx).json() == {"status": "healthy"}
        with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert ssl.cert_time_to_seconds(tls.getpeercert()["notAfter"]) == not_after
    *_, ended = make_self_signed(tmp_path, days=-1)
    assert ended < time.time()


# -- Jellyfin ----------------------------------------------------------------------------------------
def test_jellyfin_unauthenticated_and_modes(jf: FakeJellyfin) -> None:
    r = httpx.get(f"{jf.url}/health")
    assert (r.status_code, r.text) == (200, "Healthy")
    assert httpx.get(f"{jf.url}/System/Ping").json() == "Jellyfin Server"
    pub = httpx.get(f"{jf.url}/System/Info/Public").json()
    assert pub["Version"] == "10.10.7" and pub["ProductName"] == "Jellyfin Server" and pub["StartupWizardCompleted"]
    jf.mode = "degraded"
    assert httpx.get(f"{jf.url}/health").text == "Degraded"
    jf.mode = "starting"
    r = httpx.get(f"{jf.url}/health")
    assert (r.status_code, r.text) == (503, "Unhealthy")
    assert httpx.get(f"{jf.url}/System/Ping").status_code == 503
    assert httpx.get(f"{jf.url}/System/Info", headers=MB).status_code == 503
    assert httpx.get(f"{jf.url}/System/Info/Public").status_code == 200


def test_jellyfin_auth(jf: FakeJellyfin) -> None:
    info = f"{jf.url}/System/Info"
    r = httpx.get(info, headers=MB)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json()["HasPendingRestart"] is False and r.json()["OperatingSystem"]
    ok = [{"headers": {"Authorization": 'MediaBrowser Client="x", Device="y", Token="jf-key"'}},
          {"params": {"ApiKey": "jf-key"}}, {"params": {"api_key": "jf-key"}}]
    for kw in ok:
        assert httpx.get(info, **kw).status_code == 200, kw
    bad = [{}, {"headers": {"X-Emby-Token": "jf-key"}}, {"headers": {"Authorization": 'MediaBrowser Token="no"'}}]
    for kw in bad:
        assert httpx.get(info, **kw).status_code == 401, kw
    user = {"Authorization": 'MediaBrowser Token="user-tok"'}
    assert httpx.get(info, headers=user).status_code == 200
    assert httpx.get(f"{jf.url}/ScheduledTasks", headers=user).status_code == 403
    jf.mode = "bad_key"
    assert httpx.get(info, headers=MB).status_code == 401


def test_emby_uses_x_emby_token_and_has_no_health() -> None:
    with FakeJellyfin(emby=True) as emby:
        assert httpx.get(f"{emby.url}/health").status_code == 404
        assert httpx.get(f"{emby.url}/System/Info", headers={"X-Emby-Token": "jf-key"}).status_code == 200


def test_jellyfin_tasks_and_activity(jf: FakeJellyfin) -> None:
    tasks = httpx.get(f"{jf.url}/ScheduledTasks", headers=MB).json()
    assert len(tasks) == 3 and {t["State"] for t in tasks} == {"Idle"}
    assert tasks[0]["LastExecutionResult"]["Status"] == "Completed"
    jf.tasks = [make_task("Scan Media Library", "RefreshLibrary", state="Running", status="Failed", error="boom")]
    t = httpx.get(f"{jf.url}/ScheduledTasks", headers=MB).json()[0]
    assert t["State"] == "Running" and t["LastExecutionResult"]["ErrorMessage"] == "boom"
    log = f"{jf.url}/System/ActivityLog/Entries"
    assert httpx.get(log, headers=MB).json()["TotalRecordCount"] == 1
    future = httpx.get(log, headers=MB, params={"minDate": "2999-01-01T00:00:00.000Z"}).json()
    assert future == {"Items": [], "TotalRecordCount": 0, "StartIndex": 0}


def test_jellyfin_items_paging_and_images(jf: FakeJellyfin) -> None:
    q = {"IncludeItemTypes": "Movie,Series", "Recursive": "true", "Fields": "ProviderIds", "Limit": 2}
    page1 = httpx.get(f"{jf.url}/Items", headers=MB, params={**q, "StartIndex": 0}).json()
    page2 = httpx.get(f"{jf.url}/Items", headers=MB, params={**q, "StartIndex": 2}).json()
    assert page1["TotalRecordCount"] == 3 and len(page1["Items"]) == 2 and len(page2["Items"]) == 1
    movie = page1["Items"][0]
    assert movie["ImageTags"]["Primary"] and movie["ProviderIds"]["Imdb"] == "tt0111161"
    assert page2["Items"][0]["ImageTags"] == {}
    series = httpx.get(f"{jf.url}/Items", headers=MB, params={**q, "IncludeItemTypes": "Series"}).json()
    assert [i["Type"] for i in series["Items"]] == ["Series"]
    folders = httpx.get(f"{jf.url}/Items", headers=MB, params={"IncludeItemTypes": "Movie"}).json()
    assert {i["Type"] for i in folders["Items"]} == {"CollectionFolder"}
    img = f"{jf.url}/Items/{movie['Id']}/Images/Primary"
    r = httpx.get(img, params={"tag": "stale-tag"})  # no auth, tag never checked
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert httpx.head(img).status_code == 200
    assert httpx.get(f"{jf.url}/Items/{page2['Items'][0]['Id']}/Images/Primary").status_code == 404
    assert httpx.head(f"{jf.url}/Items/{'f' * 32}/Images/Primary").status_code == 404
    # Items are read live on every request: a test may change a tag or the whole library between pages.
    jf.items[movie["Id"]]["Primary"] = "fresh-tag"
    again = httpx.get(f"{jf.url}/Items", headers=MB, params={**q, "StartIndex": 0}).json()
    assert again["Items"][0]["ImageTags"] == {"Primary": "fresh-tag"}
    jf.items = {}
    assert httpx.get(f"{jf.url}/Items", headers=MB, params=q).json()["TotalRecordCount"] == 0
    assert httpx.get(img).status_code == 404


# -- metadata APIs ---------------------------------------------------------------------------------
def test_tmdb() -> None:
    with FakeTMDB(api_key="v3", bearer="v4") as f:
        url = f"{f.url}/3/configuration"
        assert "images" in httpx.get(url, params={"api_key": "v3"}).json()
        assert httpx.get(url, headers={"Authorization": "Bearer v4"}).status_code == 200
        r = httpx.get(url, params={"api_key": "nope"})
        assert r.status_code == 401 and r.json()["status_code"] == 7 and r.json()["success"] is False
        expected = {"suspended": (401, 10), "down": (503, 9), "quota": (429, 25)}
        for mode, (status, code) in expected.items():
            f.mode = mode
            r = httpx.get(url, params={"api_key": "v3"})
            assert (r.status_code, r.json()["status_code"]) == (status, code), mode
        assert r.headers["retry-after"] == "10"


@pytest.mark.parametrize("bad_status", [401, 200])
def test_omdb(bad_status: int) -> None:
    with FakeOMDb(api_key="k", bad_key_status=bad_status) as f:
        good = httpx.get(f.url + "/", params={"apikey": "k", "i": "tt0111161"})
        assert good.json()["Title"] == "The Shawshank Redemption" and good.json()["Response"] == "True"
        bad = httpx.get(f.url + "/", params={"apikey": "x", "i": "tt0111161"})
        assert (bad.status_code, bad.json()) == (bad_status, {"Response": "False", "Error": "Invalid API key!"})
        f.mode = "quota"
        r = httpx.get(f.url + "/", params={"apikey": "k", "i": "tt0111161"})
        assert (r.status_code, r.json()["Error"]) == (401, "Request limit reached!")
        f.mode = "down"
        r = httpx.get(f.url + "/", params={"apikey": "k", "i": "tt0111161"})
        assert r.status_code == 503 and "text/html" in r.headers["content-type"]


def test_mdblist() -> None:
    with FakeMDBList(api_key="k") as f:
        r = httpx.get(f"{f.url}/user", params={"apikey": "k"})
        assert r.json()["api_requests"] == 1000 and r.headers["x-ratelimit-remaining"] == "988"
        r = httpx.get(f"{f.url}/user", params={"apikey": "x"})
        assert (r.status_code, r.json()) == (401, {"error": "Invalid API key!", "response": False})
        f.mode = "quota"
        r = httpx.get(f"{f.url}/user", params={"apikey": "k"})
        assert (r.status_code, r.json()["error"]) == (429, "API Limit Reached!")


def test_trakt() -> None:
    with FakeTrakt(client_id="cid") as f:
        url, hdr = f"{f.url}/movies/trending", {"trakt-api-key": "cid", "trakt-api-version": "2"}
        r = httpx.get(url, params={"limit": 1}, headers=hdr)
        assert r.status_code == 200 and r.json()[0]["movie"]["title"] and r.headers["x-pagination-page"] == "1"
        assert json.loads(r.headers["x-ratelimit"])["remaining"] == 999
        assert httpx.get(url, headers={**hdr, "trakt-api-key": "bad"}).status_code == 403
        f.mode = "quota"
        r = httpx.get(url, headers=hdr)
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        assert json.loads(r.headers["x-ratelimit"])["remaining"] == 0


def test_openai() -> None:
    with FakeOpenAI(api_key="sk-good-key-1234") as f:
        url, auth = f"{f.url}/v1/models", {"Authorization": "Bearer sk-good-key-1234"}
        r = httpx.get(url, headers=auth)
        assert r.json()["data"][0]["id"] == "gpt-4o-mini" and "x-ratelimit-remaining-requests" in r.headers
        r = httpx.get(url, headers={"Authorization": "Bearer sk-wrong-key-0000"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert "sk-wrong-key" not in r.text  # the key is masked, as OpenAI does
        f.mode = "quota"
        assert httpx.get(url, headers=auth).json()["error"]["code"] == "insufficient_quota"
        f.mode = "rate_limited"
        r = httpx.get(url, headers=auth)
        assert (r.status_code, r.json()["error"]["code"]) == (429, "rate_limit_exceeded") and r.headers["retry-after"]


def test_anidb() -> None:
    with FakeAniDB(client="ct", clientver="2", flood_seconds=2) as f:
        q = {"request": "hotanime", "client": "ct", "clientver": "2", "protover": "1"}
        r = httpx.get(f"{f.url}/httpapi", params=q)
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip" and "<hotanime>" in r.text
        r = httpx.get(f"{f.url}/httpapi", params=q)  # asked again within 2 s: banned
        assert r.status_code == 200 and '<error code="500">banned</error>' in r.text
        assert len(f.request_times) == 2 and f.request_times[1] - f.request_times[0] < 2
    with FakeAniDB(client="ct", clientver="2", compress=False) as f:
        r = httpx.get(f"{f.url}/httpapi", params={**q, "client": "other"})
        assert r.status_code == 200 and "client version missing or invalid" in r.text
        f.mode = "quota"
        r = httpx.get(f"{f.url}/httpapi", params=q)
        assert "content-encoding" not in r.headers and b'<error code="500">banned</error>' in r.content


# -- apps --------------------------------------------------------------------------------------------
def test_aperture_jobs() -> None:
    with FakeAperture(token="tok") as f:
        auth = {"Authorization": "Bearer tok"}
        assert httpx.get(f"{f.url}/health").json() == {"status": "ok"}
        assert httpx.get(f"{f.url}/api/jobs/active").status_code == 401
        f.active_jobs.append({"job_name": "sync-movies", "started_at": time.time() - 7200})
        jobs = httpx.get(f"{f.url}/api/jobs/active", headers=auth).json()
        assert jobs[0]["jobName"] == "sync-movies" and jobs[0]["startedAt"].endswith("Z") and "progress" in jobs[0]
        assert httpx.post(f"{f.url}/api/jobs/sync-movies/run", headers=auth).status_code == 409
        r = httpx.post(f"{f.url}/api/jobs/sync-movies/cancel", headers=auth)
        assert r.json() == {"cancelled": True, "jobName": "sync-movies"} and f.active_jobs == []
        assert httpx.post(f"{f.url}/api/jobs/sync-movies/cancel", headers=auth).status_code == 404
        f.mode = "down"
        r = httpx.get(f"{f.url}/health")
        assert (r.status_code, r.json()["database"]) == (503, "disconnected")


def test_tsundoku_admin(tmp_path: Path) -> None:
    db_path, covers = tmp_path / "tsundoku.db", tmp_path / "covers"
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE series (id INTEGER PRIMARY KEY, metadata_source TEXT, metadata_hash TEXT)")
        db.executemany("INSERT INTO series (metadata_source, metadata_hash) VALUES (?, 'h')",
                       [("mangadex",), ("anilist",), ("manual",)])
    db.close()
    covers.mkdir()
    (covers / "a.jpg").write_bytes(b"x" * 100)
    (covers / "b.jpg").write_bytes(b"x" * 50)
    (covers / "sub").mkdir()
    with FakeTsundoku(token="tok", db_path=db_path, cover_dir=covers) as f:
        auth = {"Authorization": "Bearer tok"}
        assert httpx.get(f"{f.url}/api/v1/health").json() == {"status": "ok"}
        hashes = f"{f.url}/api/v1/series/invalidate-metadata-hashes"
        assert httpx.post(hashes).status_code == 401
        assert httpx.post(hashes, headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert httpx.post(hashes, headers=auth).json() == {"invalidated": 2, "skippedManual": 1}
        with sqlite3.connect(db_path) as db:
            rows = db.execute("SELECT metadata_source, metadata_hash FROM series ORDER BY id").fetchall()
        db.close()
        assert rows == [("mangadex", None), ("anilist", None), ("manual", "h")]
        refresh = f"{f.url}/api/v1/series/refresh-all"
        assert httpx.post(refresh, headers=auth).json()["triggered"] is True
        f.busy = True
        assert httpx.post(refresh, headers=auth).json()["triggered"] is False
        r = httpx.post(f"{f.url}/api/v1/covers/invalidate-cache", headers=auth)
        assert r.json() == {"filesDeleted": 2, "bytesFreed": 150} and [p.name for p in covers.iterdir()] == ["sub"]
        f.mode = "down"
        assert httpx.get(f"{f.url}/api/v1/health").status_code == 503
