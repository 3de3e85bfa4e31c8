"""poster_repair against the fake Jellyfin built from the Aperture manifest's items: it fixes exactly the
broken rows, leaves items without an image alone, and asks only the configured media server."""

from __future__ import annotations

import psycopg

from action_helpers import act, run, runtime
from fakes import FakeJellyfin


def posters(dsn: str) -> dict[tuple[str, int], str | None]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {(table, r[0]): r[1] for table in ("movies", "series")
                for r in conn.execute(f"SELECT id, poster_url FROM {table}")}


def ids(dsn: str, table: str) -> dict[int, str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return dict(conn.execute(f"SELECT id, provider_item_id FROM {table}"))


def test_poster_repair_fixes_exactly_the_broken_rows(tmp_path, fresh_aperture_db):
    dsn, m = fresh_aperture_db
    with FakeJellyfin(items=m["jellyfin_items"]) as jf:
        rt = runtime(tmp_path, databases=[{"name": "aperture", "dsn": dsn, "profile": "aperture"}],
                     services=[{"name": "jellyfin", "kind": "jellyfin", "url": jf.url, "api_key": "jf-key"}])
        before = posters(dsn)
        try:
            plan = act(rt, "poster_repair", dry_run=True)["result"]
            assert posters(dsn) == before  # the dry run wrote nothing
            record = act(rt, "poster_repair")
        finally:
            run(rt.close())
        hosts = {h.get("host") for _, _, h in jf.requests}
        paths = {p.split("?")[0] for _, p, _ in jf.requests}
    broken_movies = set(m["missing_poster_movie_ids"]) | set(m["stale_poster_movie_ids"])
    broken_series = set(m["stale_poster_series_ids"])
    no_image = len(m["jellyfin_missing_image_movie_ids"]) + len(m["jellyfin_missing_image_series_ids"])
    assert len(plan["fixes"]) == len(broken_movies) + len(broken_series) == 75
    assert record["outcome"] == "succeeded", record["error"]
    total = m["counts"]["movies"] + m["counts"]["series"]
    assert record["result"] == {"scanned": total, "updated": 75, "errors": 0, "unfixable": no_image}
    after = posters(dsn)
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {("movies", i) for i in broken_movies} | {("series", i) for i in broken_series}
    movie_items = ids(dsn, "movies")
    for i in broken_movies:  # the app's own base (system_settings.jellyfin_url), the item's current tag
        item = movie_items[i]
        assert after[("movies", i)] == (f"{m['jellyfin_base']}/Items/{item}/Images/Primary"
                                        f"?tag={m['jellyfin_items'][item]['Primary']}")
    assert hosts == {f"127.0.0.1:{jf.port}"} and paths == {"/Items"}  # only the configured server, only /Items
    assert {s.labels: s.value for s in rt.store.series("caretaker_action_runs_total")}[
        (("action", "poster_repair"), ("outcome", "succeeded"))] == 1
