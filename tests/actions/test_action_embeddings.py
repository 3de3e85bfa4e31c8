"""drop_legacy_embeddings: refuses without confirm and without a fresh verified backup, then drops exactly the
legacy and inactive-dimension tables that hold rows."""

from __future__ import annotations

import time

import psycopg
import pytest

from action_helpers import act, run, runtime
from agent.actions.base import ActionError, Refused


def embedding_tables(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {r[0]: r[1] for r in conn.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
            "AND relname ~ '^(series_|episode_)?embeddings_([0-9]+|legacy)$'")}


def test_drop_legacy_embeddings_only_after_a_fresh_verified_backup(tmp_path, fresh_aperture_db):
    dsn, manifest = fresh_aperture_db
    clock = {"offset": 0.0}
    sections = {"databases": [{"name": "aperture", "dsn": dsn, "profile": "aperture"}],
                "backups": [{"name": "aperture-files", "database": "aperture", "directory": str(tmp_path / "bk"),
                             "pattern": "aperture_backup_*.dump", "kind": "pg_dump-custom"}]}
    rt = runtime(tmp_path, clock=lambda: time.time() + clock["offset"], **sections)
    before = embedding_tables(dsn)
    legacy = {"embeddings_legacy", "series_embeddings_legacy", "episode_embeddings_legacy"}
    expected = legacy | {"embeddings_1536"}  # rows of a model that is no longer active
    try:
        with pytest.raises(ActionError) as e:
            rt.actions.prepare("drop_legacy_embeddings")
        assert e.value.reason.startswith("confirm: drop_legacy_embeddings is destructive")
        with pytest.raises(Refused) as e:
            act(rt, "drop_legacy_embeddings", confirm=True, trigger="api")
        assert "no backup of aperture passed verify_backup within 1d" in e.value.reason
        assert embedding_tables(dsn) == before

        assert act(rt, "backup")["outcome"] == "succeeded"
        assert act(rt, "verify_backup")["outcome"] == "succeeded"
        clock["offset"] = 86400 + 60  # a day later the verified backup is too old
        with pytest.raises(Refused):
            act(rt, "drop_legacy_embeddings", confirm=True, trigger="api")
        clock["offset"] = 0

        plan = act(rt, "drop_legacy_embeddings", dry_run=True, trigger="api")["result"]
        assert set(plan["tables"]) == expected and plan["active_model"] == manifest["active_embedding_model"]
        assert plan["active_dimensions"] == [manifest["active_embedding_dimension"]]
        assert plan["bytes"] == sum(before[t] for t in expected)
        assert all(s.startswith('DROP TABLE "public".') for s in plan["statements"])
        assert embedding_tables(dsn) == before  # the dry run dropped nothing

        record = act(rt, "drop_legacy_embeddings", confirm=True, trigger="api")
    finally:
        run(rt.close())
    assert record["outcome"] == "succeeded", record["error"]
    assert set(record["result"]["droppedTables"]) == expected
    assert record["result"]["bytesFreed"] == sum(before[t] for t in expected) > 0
    after = embedding_tables(dsn)
    assert set(after) == set(before) - expected  # exactly those: the active and the empty tables remain
