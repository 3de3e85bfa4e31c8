"""What an action acts on, resolved from the config: databases, apps and backup targets.

An *app* is a `databases:` or `sqlite:` entry with a `profile:` (its name is the `app` label of the
app's series), with its own API when `app.api` names a service; a service of an app kind (aperture,
aphrodite, tsundoku) that no entry names is an app of its own, reachable only through its API.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import BackupTargetConfig, Config, DatabaseConfig, ServiceConfig, SQLiteConfig

APP_KINDS = ("aperture", "aphrodite", "tsundoku")


@dataclass(frozen=True)
class Target:
    name: str
    profile: str | None = None
    database: DatabaseConfig | None = None
    sqlite: SQLiteConfig | None = None
    service: ServiceConfig | None = None
    backup: BackupTargetConfig | None = None


def postgres_targets(config: Config) -> dict[str, Target]:
    return {db.name: Target(db.name, db.profile, database=db) for db in config.databases}


def app_targets(config: Config) -> dict[str, Target]:
    """Every app instance by name, with its profile, its database or SQLite file, and its API service."""
    apps: dict[str, Target] = {}
    named = set()
    for entry in [*config.databases, *config.sqlite]:
        if entry.profile is None or entry.name in apps:
            continue
        svc = next((s for s in config.services if s.name == entry.app.api), None)
        named.add(entry.app.api)
        if isinstance(entry, DatabaseConfig):
            apps[entry.name] = Target(entry.name, entry.profile, database=entry, service=svc)
        else:
            apps[entry.name] = Target(entry.name, entry.profile, sqlite=entry, service=svc)
    for svc in config.services:
        if svc.kind in APP_KINDS and svc.name not in named and svc.name not in apps:
            apps[svc.name] = Target(svc.name, svc.kind, service=svc)
    return apps


def backup_targets(config: Config) -> dict[str, Target]:
    """`backups[]` entries linked to the database or SQLite file they back up (`database:`)."""
    dbs = {d.name: d for d in config.databases}
    files = {s.name: s for s in config.sqlite}
    out = {}
    for b in config.backups:
        if b.database in dbs:
            out[b.name] = Target(b.name, dbs[b.database].profile, database=dbs[b.database], backup=b)
        elif b.database in files:
            out[b.name] = Target(b.name, files[b.database].profile, sqlite=files[b.database], backup=b)
    return out


def entry_of(target: Target) -> DatabaseConfig | SQLiteConfig | None:
    """The app's database entry (PostgreSQL or SQLite), None for an API-only app."""
    return target.database or target.sqlite
