"""The whole fixture stack for end-to-end tests: every part Caretaker watches, running on loopback, and the
Caretaker config dict that watches it.

    with running_stack(workdir, pg_cluster, aperture_template) as stack:
        stack.config                     # → dict for AgentProcess or `caretaker check --config`
        stack.aperture_manifest          # what the builders planted (tests/fixtures)

Parts: a private clone of the Aperture database (its poster URLs pointing at the fake Jellyfin) and an
Aphrodite database built at start, both with amcheck installed; a Tsundoku data directory; the fake
Jellyfin serving both apps' library items with their current Primary tags; fakes of TMDB, OMDb, MDBList,
Trakt, OpenAI, AniDB and the three apps' APIs in good mode; a TLS server with a self-signed certificate
valid for 90 days; a backups directory holding a real `pg_dump -Fc` of the Aperture database; an app log
file; push jobs; an Apprise `json://` receiver. The only faults are those the builders planted.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fakes import (FakeAniDB, FakeAperture, FakeAphrodite, FakeJellyfin, FakeMDBList, FakeOMDb, FakeOpenAI,
                   FakeServer, FakeTMDB, FakeTrakt, FakeTsundoku)
from fakes.certs import make_self_signed
from fixtures import build_aphrodite, build_tsundoku, fresh_clone, set_poster_base
from fixtures._pg import connect
from pgcluster import PG_BIN, PgCluster
from receivers import JsonReceiver

ADMIN_TOKEN = "stack-admin-token-0123456789"
JELLYFIN_KEY = "jf-stack-key-0123456789"
APERTURE_TOKEN = "aperture-stack-token"
TSUNDOKU_TOKEN = "tsundoku-stack-token"
TLS_DAYS = 90  # far from TLSCertificateExpiringSoon's 14 days
PUSH_JOBS = [{"name": "backup-db", "schedule": "0 1 * * *", "grace": "2h"},
             {"name": "offsite-sync", "period": "1d", "grace": "6h", "app": "backups"}]
LOG_LINES = ["2026-01-01 10:00:00 INFO started", "2026-01-01 10:00:01 WARN slow provider",
             "2026-01-01 10:00:02 ERROR provider failed", "2026-01-01 10:00:03 INFO done"]

# Aphrodite's media items as its builder stores them: poster tag md5('img:' || jellyfin_id).
APHRODITE_ITEMS_SQL = "SELECT jellyfin_id, item_type, title, md5('img:' || jellyfin_id) FROM media_items"


@dataclass
class Stack:
    """A running stack: `config` watches all of it; the manifests say what the builders planted."""

    config: dict
    aperture_dsn: str
    aperture_manifest: dict
    aphrodite_dsn: str
    aphrodite_manifest: dict
    tsundoku_manifest: dict
    fakes: dict[str, FakeServer]
    receiver: JsonReceiver
    backup_file: Path
    log_file: Path
    admin_token: str = ADMIN_TOKEN
    secrets: list[str] = field(default_factory=list)  # every credential in the config, for leak checks

    def write_config(self, path: Path, state_dir: Path) -> Path:
        """The config as a YAML file keeping its state in `state_dir`, for `caretaker … --config`."""
        config = {**self.config, "agent": {**self.config["agent"], "state_dir": str(state_dir)}}
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path


def jellyfin_items(aperture_manifest: dict, aphrodite_dsn: str) -> dict[str, dict]:
    """Both apps' library as one Jellyfin serves it: Aperture's items (with its planted stale and missing
    images) plus Aphrodite's, each with the tag that app stored."""
    items = dict(aperture_manifest["jellyfin_items"])
    with connect(aphrodite_dsn) as conn:
        for item_id, kind, title, tag in conn.execute(APHRODITE_ITEMS_SQL):
            items[item_id] = {"Name": title, "Type": kind, "Primary": tag}
    return items


def pg_dump(dsn: str, out: Path) -> Path:
    """`pg_dump -F c -Z 6` as Aperture writes its backups (DESIGN.md §5)."""
    subprocess.run([str(PG_BIN / "pg_dump"), "-F", "c", "-Z", "6", "-f", str(out), f"--dbname={dsn}"],
                   check=True, capture_output=True, timeout=120)
    return out


def point_posters_at(dsn: str, old_base: str, new_base: str) -> None:
    """Rewrite Aperture's poster URLs to the fake Jellyfin, then VACUUM: the rewrite leaves a dead copy of
    every row, which PostgresDeadTuplesHigh would rightly report (a settled database has been vacuumed)."""
    set_poster_base(dsn, old_base, new_base)
    with connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) movies, series, episodes")


def install_amcheck(dsn: str) -> None:
    """What a user does once so the integrity probe may run (agent/integrity.py grant_statements)."""
    with connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")


def stack_config(f: dict[str, FakeServer], rx: JsonReceiver, aperture_dsn: str, aphrodite_dsn: str,
                 tsundoku: dict, backups: Path, log_file: Path, tls_port: int) -> dict:
    svc = lambda name, kind, fake, **kw: {"name": name, "kind": kind, "url": fake.url, **kw}  # noqa: E731
    return {
        "agent": {"admin_token": ADMIN_TOKEN},
        "system": {"mountpoints": ["/"]},
        "databases": [
            {"name": "aperture", "dsn": aperture_dsn, "profile": "aperture", "app": {"api": "aperture-api"}},
            {"name": "aphrodite", "dsn": aphrodite_dsn, "profile": "aphrodite", "app": {"api": "aphrodite-api"}},
        ],
        "sqlite": [{"name": "tsundoku", "path": str(tsundoku["db_path"]), "profile": "tsundoku",
                    "app": {"api": "tsundoku-api"}}],
        "services": [
            svc("jellyfin", "jellyfin", f["jellyfin"], api_key=JELLYFIN_KEY),
            svc("aperture-api", "aperture", f["aperture"], admin_token=APERTURE_TOKEN),
            svc("aphrodite-api", "aphrodite", f["aphrodite"]),
            svc("tsundoku-api", "tsundoku", f["tsundoku"], admin_token=TSUNDOKU_TOKEN),
            svc("tmdb", "tmdb", f["tmdb"], api_key="tmdb-v3"),
            svc("omdb", "omdb", f["omdb"], api_key="omdb-key"),
            svc("mdblist", "mdblist", f["mdblist"], api_key="mdbl-key"),
            svc("trakt", "trakt", f["trakt"], api_key="trakt-id"),
            svc("openai", "openai", f["openai"], api_key="sk-test"),
            svc("anidb", "anidb", f["anidb"], client="caretaker", client_version="1"),
        ],
        "tls": {"targets": [f"127.0.0.1:{tls_port}"]},
        "jobs": PUSH_JOBS,
        "backups": [{"name": "aperture", "preset": "aperture", "directory": str(backups), "database": "aperture"}],
        "logs": [{"app": "aperture", "paths": [str(log_file)], "start_at": "beginning"}],
        "notify": {"urls": [rx.apprise_url("/stack")], "group_window": "1s"},
        "actions": {"cover_cache_dirs": {"tsundoku": str(tsundoku["covers"]["covers_dir"])}},
    }


@contextlib.contextmanager
def built_database(cluster: PgCluster, name: str, builder: Callable[[str], dict]) -> Iterator[tuple[str, dict]]:
    """(dsn, manifest) of a database built now by `builder`; dropped afterwards."""
    try:
        dsn = cluster.create_database(name)
        yield dsn, builder(dsn)
    finally:
        if cluster.running:
            cluster.drop_database(name)


@contextlib.contextmanager
def running_stack(workdir: Path, cluster: PgCluster, aperture_template: dict) -> Iterator[Stack]:
    """Start every part (stopped again on exit) and yield the Stack. `aperture_template` is the session's
    Aperture template manifest (conftest `_aperture_template`): a clone of it is ready in a second, and its
    planted faults hold for an hour after the build. Aphrodite is built anew (1 s): its healthy rows are
    minutes old by design (pending 5 min, processing 1 min) and would turn into faults in an old clone."""
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        aperture_dsn, aperture = stack.enter_context(fresh_clone(cluster, "aperture_template", aperture_template))
        aphrodite_dsn, aphrodite = stack.enter_context(
            built_database(cluster, f"aphrodite_stack_{workdir.name}", build_aphrodite))
        for dsn in (aperture_dsn, aphrodite_dsn):
            install_amcheck(dsn)
        tsundoku = build_tsundoku(workdir / "tsundoku")
        cert, key, _ = make_self_signed(workdir / "tls", days=TLS_DAYS)
        fakes: dict[str, FakeServer] = {
            "jellyfin": FakeJellyfin(api_key=JELLYFIN_KEY, items=jellyfin_items(aperture, aphrodite_dsn)),
            "aperture": FakeAperture(token=APERTURE_TOKEN), "aphrodite": FakeAphrodite(),
            "tsundoku": FakeTsundoku(token=TSUNDOKU_TOKEN, db_path=tsundoku["db_path"],
                                     cover_dir=tsundoku["covers"]["covers_dir"]),
            "tmdb": FakeTMDB(), "omdb": FakeOMDb(), "mdblist": FakeMDBList(), "trakt": FakeTrakt(),
            "openai": FakeOpenAI(), "anidb": FakeAniDB(), "tls": FakeAphrodite(tls=(cert, key)),
        }
        for fake in fakes.values():
            stack.enter_context(fake)
        rx = stack.enter_context(JsonReceiver())
        point_posters_at(aperture_dsn, aperture["jellyfin_base"], fakes["jellyfin"].url)
        backups = workdir / "backups"
        backups.mkdir(exist_ok=True)
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime())
        backup_file = pg_dump(aperture_dsn, backups / f"aperture_backup_{stamp}.dump")
        log_file = workdir / "logs" / "aperture.log"
        log_file.parent.mkdir(exist_ok=True)
        log_file.write_text("\n".join(LOG_LINES) + "\n")
        config = stack_config(fakes, rx, aperture_dsn, aphrodite_dsn, tsundoku, backups, log_file,
                              fakes["tls"].port)
        yield Stack(config, aperture_dsn, aperture, aphrodite_dsn, aphrodite, tsundoku, fakes, rx, backup_file,
                    log_file, secrets=[ADMIN_TOKEN, JELLYFIN_KEY, APERTURE_TOKEN, TSUNDOKU_TOKEN, "tmdb-v3",
                                       "omdb-key", "mdbl-key", "trakt-id", "sk-test"])
