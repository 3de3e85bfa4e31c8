"""Shared pytest fixtures. Fixtures only: the logic lives in tests/pgcluster.py and tests/fixtures/.

Sections: PostgreSQL cluster · app databases (PostgreSQL) · app data directories (SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import build_aperture, build_aphrodite, build_template, build_tsundoku, clone, fresh_clone
from pgcluster import PG_BIN, PgCluster, pg_available

# --- PostgreSQL cluster --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL 15 on 127.0.0.1 for the whole session (trust auth, fsync off)."""
    if not pg_available():
        pytest.skip(f"PostgreSQL 15 server binaries not found in {PG_BIN} (apt-get install postgresql)")
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


# --- App databases (PostgreSQL) -------------------------------------------------------------------------------
# Each app is built once into `<app>_template`; tests get clones. Manifests list exactly what was planted.


@pytest.fixture(scope="session")
def _aperture_template(pg_cluster: PgCluster) -> dict:
    return build_template(pg_cluster, "aperture_template", build_aperture)


@pytest.fixture(scope="session")
def aperture_db(pg_cluster: PgCluster, _aperture_template: dict) -> tuple[str, dict]:
    """(dsn, manifest) of the shared Aperture database: read it, don't change it."""
    return clone(pg_cluster, "aperture_template", "aperture", _aperture_template)


@pytest.fixture
def fresh_aperture_db(pg_cluster: PgCluster, _aperture_template: dict) -> Iterator[tuple[str, dict]]:
    """(dsn, manifest) of a private Aperture database for destructive tests; dropped afterwards."""
    with fresh_clone(pg_cluster, "aperture_template", _aperture_template) as db:
        yield db


@pytest.fixture(scope="session")
def _aphrodite_template(pg_cluster: PgCluster) -> dict:
    return build_template(pg_cluster, "aphrodite_template", build_aphrodite)


@pytest.fixture(scope="session")
def aphrodite_db(pg_cluster: PgCluster, _aphrodite_template: dict) -> tuple[str, dict]:
    """(dsn, manifest) of the shared Aphrodite database: read it, don't change it."""
    return clone(pg_cluster, "aphrodite_template", "aphrodite", _aphrodite_template)


@pytest.fixture
def fresh_aphrodite_db(pg_cluster: PgCluster, _aphrodite_template: dict) -> Iterator[tuple[str, dict]]:
    """(dsn, manifest) of a private Aphrodite database for destructive tests; dropped afterwards."""
    with fresh_clone(pg_cluster, "aphrodite_template", _aphrodite_template) as db:
        yield db


# --- App data directories (SQLite) ----------------------------------------------------------------------------


@pytest.fixture
def tsundoku_db(tmp_path: Path) -> tuple[Path, Path, dict]:
    """(db path, data_dir, manifest) of a private Tsundoku data directory, built fresh per test."""
    data_dir = tmp_path / "tsundoku"
    manifest = build_tsundoku(data_dir)
    return manifest["db_path"], data_dir, manifest


# --- The whole fixture stack (tests/stack.py) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_stack(pg_cluster: PgCluster, _aperture_template: dict,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Every part Caretaker watches, on loopback, with private databases; `.config` watches it all.
    Module-scoped: a module may run actions against it, the next module gets a fresh one."""
    from stack import running_stack

    with running_stack(tmp_path_factory.mktemp("stack"), pg_cluster, _aperture_template) as stack:
        yield stack
