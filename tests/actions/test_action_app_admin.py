"""invalidate_metadata_hashes, refresh_metadata, invalidate_cover_cache (Tsundoku's admin endpoints through the
local fake, or the profile's SQL / a cache directory) and prune_logs."""

from __future__ import annotations

import gzip
import os
import sqlite3
import time

import pytest

from action_helpers import act, run, runtime
from agent.actions.base import ActionError
from fakes import FakeTsundoku


def tree(path) -> dict[str, object]:
    """Every entry under `path` (links not followed): name → size, or the link's target."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            out[os.path.relpath(full, path)] = os.readlink(full) if os.path.islink(full) else os.lstat(full).st_size
    return out


def test_tsundoku_admin_endpoints_pass_the_answer_through(tmp_path, tsundoku_db):
    db_path, data_dir, manifest = tsundoku_db
    covers = manifest["covers"]
    with FakeTsundoku(token="tsu-admin", db_path=db_path, cover_dir=covers["covers_dir"]) as fake:
        rt = runtime(tmp_path, sqlite=[{"name": "tsundoku", "path": str(db_path), "profile": "tsundoku",
                                        "app": {"api": "tsundoku-api"}}],
                     services=[{"name": "tsundoku-api", "kind": "tsundoku", "url": fake.url,
                                "admin_token": "tsu-admin"}])
        try:
            plan = act(rt, "invalidate_metadata_hashes", dry_run=True)["result"]
            assert plan == {"via": "api", "service": "tsundoku-api",
                            "request": "POST /api/v1/series/invalidate-metadata-hashes"}
            assert fake.requests == []  # a dry run sends nothing
            hashes = act(rt, "invalidate_metadata_hashes")
            fake.busy = True
            busy = act(rt, "refresh_metadata")
            fake.busy = False
            refreshed = act(rt, "refresh_metadata")
            cache = act(rt, "invalidate_cover_cache")
            fake.token = "rotated"
            refused = act(rt, "invalidate_metadata_hashes")
        finally:
            run(rt.close())
        auth = {h.get("authorization") for _, _, h in fake.requests}
    assert hashes["result"] == {"via": "api", "invalidated": manifest["series_total"] - manifest["manual"],
                                "skippedManual": manifest["manual"]}
    assert busy["outcome"] == "failed" and busy["result"]["triggered"] is False
    assert refreshed["outcome"] == "succeeded" and refreshed["result"]["provider"] == "mangadex"
    assert cache["result"] == {"via": "api", "filesDeleted": covers["cover_files"], "bytesFreed": covers["cover_bytes"]}
    assert refused["outcome"] == "failed" and "answered 403" in refused["error"] and "tsu-admin" not in refused["error"]
    assert auth == {"Bearer tsu-admin"}


def test_without_an_api_the_profile_sql_does_it(tmp_path, tsundoku_db):
    db_path, _, manifest = tsundoku_db
    rt = runtime(tmp_path, sqlite=[{"name": "tsundoku", "path": str(db_path), "profile": "tsundoku"}])
    try:
        assert act(rt, "invalidate_metadata_hashes", dry_run=True)["result"]["via"] == "sql"
        record = act(rt, "invalidate_metadata_hashes")
    finally:
        run(rt.close())
    non_manual = manifest["series_total"] - manifest["manual"]
    assert record["result"] == {"via": "sql", "rows": non_manual}
    with sqlite3.connect(db_path) as conn:
        left = dict(conn.execute("SELECT metadata_source = 'manual', count(metadata_hash) FROM series GROUP BY 1"))
    assert left == {0: 0, 1: manifest["manual"]}  # manual rows keep their hash


def test_cover_cache_directory_never_follows_links(tmp_path, tsundoku_db):
    db_path, _, manifest = tsundoku_db
    covers = manifest["covers"]
    outside = covers["outside_dir"]
    rt = runtime(tmp_path, sqlite=[{"name": "tsundoku", "path": str(db_path), "profile": "tsundoku"}],
                 actions={"cover_cache_dirs": {"tsundoku": str(covers["covers_dir"])}})
    outside_before, cache_before = tree(outside), tree(covers["covers_dir"])
    try:
        plan = act(rt, "invalidate_cover_cache", dry_run=True)["result"]
        assert tree(covers["covers_dir"]) == cache_before
        record = act(rt, "invalidate_cover_cache")
    finally:
        run(rt.close())
    assert len(plan["files"]) == covers["cover_files"] and plan["bytes"] == covers["cover_bytes"]
    assert record["result"] == {"via": "files", "filesDeleted": covers["cover_files"],
                                "bytesFreed": covers["cover_bytes"]}
    left = tree(covers["covers_dir"])
    deleted = {k for k, v in cache_before.items() if "/" not in k and k not in covers["symlinks"] and k != "thumbs"}
    assert len(deleted) == covers["cover_files"]
    assert left == {k: v for k, v in cache_before.items() if k not in deleted}  # subdirectory and links stay
    assert set(covers["symlinks"]) <= set(left)
    assert sum(1 for k in left if k.startswith("thumbs/")) == covers["thumb_files"]
    assert tree(outside) == outside_before and all(p.exists() for p in covers["outside_files"])


def test_prune_logs_rotates_and_deletes(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    big = logs / "app.log"
    big.write_bytes(b"error line\n" * 200_000)  # 2.2 MB
    small = logs / "worker.log"
    small.write_bytes(b"ok\n" * 10)
    old = logs / "app.log.20200101T000000Z.gz"
    old.write_bytes(gzip.compress(b"old"))
    os.utime(old, (time.time() - 30 * 86400,) * 2)
    target = tmp_path / "elsewhere.log"
    target.write_bytes(b"x" * 3_000_000)
    (logs / "link.log").symlink_to(target)
    rt = runtime(tmp_path, logs=[{"app": "web", "paths": [str(logs / "*.log")]}])
    try:
        with pytest.raises(ActionError):
            rt.actions.prepare("prune_logs", params={"max_size": "1MiB"})
        plan = act(rt, "prune_logs", dry_run=True, params={"max_size": "1MiB"})["result"]
        assert [(os.path.basename(s["path"]), s["do"]) for s in plan["steps"]] == [
            ("app.log", "rotate"), (old.name, "delete")]
        assert big.stat().st_size == 2_200_000 and old.exists()
        record = act(rt, "prune_logs", confirm=True, params={"max_size": "1MiB"})
    finally:
        run(rt.close())
    assert record["outcome"] == "succeeded", record["error"]
    assert big.stat().st_size == 0 and not old.exists() and small.stat().st_size == 30
    [rotated] = [p for p in logs.iterdir() if p.name.startswith("app.log.") and p.name.endswith(".gz")]
    assert gzip.decompress(rotated.read_bytes()) == b"error line\n" * 200_000
    assert target.stat().st_size == 3_000_000 and (logs / "link.log").is_symlink()
    assert record["result"]["bytes"] == 2_200_000 + len(gzip.compress(b"old"))
