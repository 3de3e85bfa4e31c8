"""Embeddings and posters probes against the Aperture and Aphrodite fixtures and a fake Jellyfin."""

from __future__ import annotations

import pytest

from agent.probes import embeddings, posters
from app_helpers import pg_app, run_built, value, values
from fakes import FakeJellyfin


def test_aperture_embeddings(aperture_db):
    dsn, m = aperture_db
    cfg = pg_app("aperture", dsn)
    result = run_built(cfg, embeddings.build, 0.0)["aperture"]
    assert result.ok, result.reason
    rows = values(result, "caretaker_embeddings_rows", "relation")
    assert rows == m["embeddings"]  # every table the app has, empty ones at 0
    assert len(rows) == 27
    assert value(result, "caretaker_embeddings_rows", relation="embeddings_768", dimension="768") == 5000
    assert value(result, "caretaker_embeddings_rows", relation="embeddings_legacy", dimension="") == 1500
    sizes = values(result, "caretaker_embeddings_size_bytes", "relation")
    assert sizes["embeddings_768"] > 5000 * 768 * 4 > sizes["series_embeddings_768"] > 0
    # embeddings_legacy and series_embeddings_legacy (legacy), embeddings_1536 (text-embedding-3-small, while
    # the active model nomic-embed-text makes 768): three relations with rows the app no longer reads
    assert m["active_embedding_dimension"] == 768
    assert value(result, "caretaker_embeddings_legacy_relations", app="aperture") == 3
    assert result.summary.endswith("legacy with rows: embeddings_1536, embeddings_legacy, series_embeddings_legacy")


def test_unknown_active_model_is_reported(fresh_aperture_db):
    import psycopg

    dsn, _ = fresh_aperture_db
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE system_settings SET value = 'my-own-model:7b' WHERE key = 'embedding_model'")
    cfg = pg_app("aperture", dsn)
    result = run_built(cfg, embeddings.build, 0.0)["aperture"]
    assert not result.ok and "my-own-model:7b" in result.reason and "model_dimensions" in result.reason
    assert value(result, "caretaker_embeddings_legacy_relations", app="aperture") == 2  # only the *_legacy ones


def aperture_posters_cfg(dsn: str, jellyfin: FakeJellyfin | None):
    services = [{"name": "jf", "kind": "jellyfin", "url": jellyfin.url, "api_key": "jf-key"}] if jellyfin else []
    return pg_app("aperture", dsn, services)


def test_aperture_posters_without_media_server(aperture_db):
    dsn, m = aperture_db
    result = run_built(aperture_posters_cfg(dsn, None), posters.build, 0.0)["aperture"]
    assert result.ok, result.reason
    assert values(result, "caretaker_posters_missing", "kind") == {
        "movie": len(m["missing_poster_movie_ids"]), "series": 0, "episode": 0}
    assert len(m["missing_poster_movie_ids"]) == 25


def test_aperture_posters_compared_with_jellyfin(aperture_db):
    dsn, m = aperture_db
    with FakeJellyfin(items=m["jellyfin_items"]) as jf:
        result = run_built(aperture_posters_cfg(dsn, jf), posters.build, 0.0)["aperture"]
        paths = jf.paths()
    assert result.ok, result.reason
    movies = 25 + len(m["stale_poster_movie_ids"]) + len(m["jellyfin_missing_image_movie_ids"])
    series = len(m["stale_poster_series_ids"]) + len(m["jellyfin_missing_image_series_ids"])
    assert (movies, series) == (25 + 40 + 8, 10 + 2)
    assert values(result, "caretaker_posters_missing", "kind") == {"movie": movies, "series": series, "episode": 0}
    assert result.summary == ("movie 73 (8 no image, 40 stale tag, 25 without poster); "
                              "series 12 (2 no image, 10 stale tag)")
    # every page once, with the documented parameters; 22 000 items at the default 500 a page
    assert len(paths) == 44
    assert all("IncludeItemTypes=Movie%2CSeries" in p and "Recursive=true" in p and "Fields=ProviderIds" in p
               and "Limit=500" in p for p in paths)
    assert sorted(int(p.split("StartIndex=")[1].split("&")[0]) for p in paths) == list(range(0, 22_000, 500))


def test_aphrodite_posters_and_media_server_refusing_the_key(aphrodite_db):
    dsn, m = aphrodite_db
    with FakeJellyfin(api_key="other-key", items={}) as jf:
        cfg = pg_app("aphrodite", dsn, [{"name": "jf", "kind": "jellyfin", "url": jf.url, "api_key": "wrong-key"}])
        result = run_built(cfg, posters.build, 0.0)["aphrodite"]
    # the app's own count stands; the comparison could not run, and the reason says why without the key
    assert not result.ok and "401" in result.reason and "wrong-key" not in result.reason
    assert values(result, "caretaker_posters_missing", "kind") == {"movie": 10, "series": 0}
    assert len(m["missing_poster_media_ids"]) == 10


def test_emby_uses_its_token_header(aphrodite_db):
    dsn, m = aphrodite_db
    with FakeJellyfin(emby=True, api_key="emby-key", items={}) as emby:
        cfg = pg_app("aphrodite", dsn, [{"name": "emby", "kind": "emby", "url": emby.url, "api_key": "emby-key"}])
        result = run_built(cfg, posters.build, 0.0)["aphrodite"]
        headers = emby.requests[0][2]
    assert headers["x-emby-token"] == "emby-key" and "authorization" not in headers
    assert result.ok, result.reason
    # an empty library: every item with a poster is no longer on the server
    assert value(result, "caretaker_posters_missing", kind="movie") == pytest.approx(m["media_items"] * 4 / 5)
