"""Configuration: pydantic models (extra="forbid"), YAML loading, ``${ENV}`` and ``*_file`` secrets (DESIGN.md §4).

`load_config(path)` returns a validated `Config` or raises `ConfigError`, whose `errors` name each bad
field by its path (``services[2].api_key: field required``). Secret values are `SecretStr` everywhere
and never appear in an error message: errors quote the field path, not the input.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, field_validator,
                      model_validator)

from agent.durations import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A config that cannot be used; `errors` is a list of ``"path: message"`` lines."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def _is_secret(annotation: Any) -> bool:
    text = repr(annotation)
    return "SecretStr" in text


class Base(BaseModel):
    """Every section forbids unknown keys, and gives each secret field `x` a twin `x_file` (Docker secrets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, field in cls.model_fields.items():
            key = f"{name}_file"
            if key not in data or not _is_secret(field.annotation):
                continue
            if data.get(name) is not None:
                raise ValueError(f"give either {name} or {key}, not both")
            path = Path(str(data.pop(key)))
            try:
                data[name] = path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"{key}: cannot read {path}: {exc.strerror}") from None
        return data


class AgentConfig(Base):
    listen: str = "127.0.0.1:9464"
    state_dir: Path = Path("./caretaker-data")
    admin_token: SecretStr | None = None
    metrics_require_token: bool = False
    hostname: str = Field(default_factory=socket.gethostname)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    @model_validator(mode="after")
    def _check_listen(self) -> "AgentConfig":
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be HOST:PORT, got {self.listen!r}")
        return self


class SystemConfig(Base):
    enabled: bool = True
    interval: Duration = 15.0
    timeout: Duration = 5.0
    # None: every real (non-virtual) mounted filesystem, as df shows them.
    mountpoints: list[str] | None = None
    # None: every interface except loopback.
    network_devices: list[str] | None = None


class IntegrityConfig(Base):
    enabled: bool = True
    # amcheck is heavy on large databases: weekly, off-peak (Sunday 04:00) by default.
    schedule: str = "0 4 * * 0"
    parent_check: bool = False  # bt_index_parent_check takes ShareLock: blocks writes (LIBRARIES.md B6)
    heapallindexed: bool = False
    lock_timeout: Duration = 5.0
    statement_timeout: Duration = 300.0


class DatabaseConfig(Base):
    name: str
    dsn: SecretStr
    profile: str | None = None
    interval: Duration = 30.0
    timeout: Duration = 20.0
    connect_timeout: Duration = 5.0
    statement_timeout: Duration = 10.0
    # Cardinality bound (DESIGN.md §6): per-relation series only for the largest N relations.
    top_relations: int = Field(50, ge=1, le=1000)
    integrity: IntegrityConfig = IntegrityConfig()


class SQLiteConfig(Base):
    name: str
    path: Path
    profile: str | None = None
    interval: Duration = 300.0
    timeout: Duration = 60.0
    # How long quick_check waits for a writer's lock before the probe fails with "database is locked".
    busy_timeout: Duration = 5.0


BackupKind = Literal["pg_dump-custom", "sql", "sql.gz", "sqlite"]

# How the apps name their own backups (DESIGN.md §5); a target's own keys override these.
BACKUP_PRESETS: dict[str, dict[str, Any]] = {
    "aperture": {"pattern": ["aperture_backup_*.dump"], "kind": "pg_dump-custom", "retention": 7},
    "aphrodite": {"pattern": ["*.sql", "*.sql.gz"], "kind": "sql"},
}


class BackupTargetConfig(Base):
    """A directory of backup files: watched by the backups probe, written by the backup action."""

    name: str
    preset: Literal["aperture", "aphrodite"] | None = None
    # None: the path the app records itself (Aperture's backup_config.backup_path, through `database`).
    directory: Path | None = None
    pattern: list[str]  # file-name globs inside `directory`; one string is accepted
    kind: BackupKind
    retention: int | None = Field(None, ge=1)  # newest files the backup action keeps; None keeps all
    database: str | None = None  # the `databases:` or `sqlite:` entry these files are backups of
    interval: Duration = 300.0
    timeout: Duration = 30.0

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in BACKUP_PRESETS:
            return {**BACKUP_PRESETS[data["preset"]], **data}
        return data

    @field_validator("pattern", mode="before")
    @classmethod
    def _file_globs(cls, value: Any) -> Any:
        value = [value] if isinstance(value, str) else value
        if isinstance(value, list) and any("/" in str(v) for v in value):
            raise ValueError("patterns match file names inside directory; put the path in directory")
        return value

    @model_validator(mode="after")
    def _has_directory(self) -> "BackupTargetConfig":
        if self.directory is None and self.database is None:
            raise ValueError("give directory, or database naming an app that records its backup path")
        return self


class LogConfig(Base):
    """Log files of one app, tailed by the logs probe."""

    app: str
    paths: list[str] = Field(min_length=1)  # files or globs; rotated names need not match
    level_regex: str | None = None  # None: the built-in one of agent/probes/logs.py
    json_level_field: str = "level"  # JSON lines: the key holding the level
    # A file seen when the app is first configured starts at its end: old lines are history, not news.
    start_at: Literal["end", "beginning"] = "end"
    window: Duration = 900.0
    max_bytes_per_run: int = Field(16 * 1024 * 1024, ge=4096)  # a huge backlog never stalls a round
    interval: Duration = 30.0
    timeout: Duration = 30.0

    @field_validator("level_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


ServiceKind = Literal[
    "jellyfin", "emby", "tmdb", "omdb", "mdblist", "anidb", "trakt", "openai",
    "aperture", "aphrodite", "tsundoku", "http",
]

# Fields each service kind cannot work without (metadata APIs have public default URLs; AniDB
# identifies clients by a registered client name and version instead of a key).
_SERVICE_REQUIRES: dict[str, tuple[str, ...]] = {
    "jellyfin": ("url", "api_key"), "emby": ("url", "api_key"),
    "tmdb": ("api_key",), "omdb": ("api_key",), "mdblist": ("api_key",), "trakt": ("api_key",),
    "openai": ("api_key",), "anidb": ("client", "client_version"),
    "aperture": ("url",), "aphrodite": ("url",), "tsundoku": ("url",), "http": ("url",),
}


class HttpExpect(Base):
    """Conditions of the generic `http` kind; every one given must hold for the outcome `ok`."""

    status: list[Annotated[int, Field(ge=100, le=599)]] = [200]
    json_path: str | None = None  # dotted path into the JSON answer, list items by index: "checks.0.status"
    json_value: Any = None  # None: the path only has to exist
    body_regex: str | None = None  # re.search on the body text
    max_latency: Duration | None = None  # a slower answer is the outcome `timeout`

    @field_validator("body_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class ServiceConfig(Base):
    name: str
    kind: ServiceKind
    url: str | None = None  # defaults to the public API for metadata kinds
    api_key: SecretStr | None = None
    client: str | None = None  # AniDB client name (registered with AniDB)
    client_version: str | None = None
    interval: Duration = 60.0
    timeout: Duration = 10.0
    error_window: Duration = 900.0
    expect: HttpExpect | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> "ServiceConfig":
        missing = [f for f in _SERVICE_REQUIRES[self.kind] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{', '.join(missing)}: required for kind {self.kind}")
        if self.expect is not None and self.kind != "http":
            raise ValueError(f"expect: only for kind http, not {self.kind}")
        if self.url is not None and not re.match(r"https?://[^/?#]+", self.url):
            raise ValueError("url: must start with http:// or https:// and name a host")
        return self


class TlsConfig(Base):
    """Certificate expiry of every https service URL, plus `targets` (extra ``host:port``)."""

    enabled: bool = True
    interval: Duration = 3600.0  # expiry moves in days: hourly is plenty
    timeout: Duration = 10.0
    targets: list[Annotated[str, Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^:\s/\[\]]+):\d{1,5}$")]] = []


class PushJobConfig(Base):
    name: str
    schedule: str | None = None  # cron expression, evaluated in `timezone`
    period: Duration | None = None  # or a plain period between runs
    grace: Duration = 3600.0
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _one_schedule(self) -> "PushJobConfig":
        if (self.schedule is None) == (self.period is None):
            raise ValueError("give exactly one of schedule (cron) or period")
        return self


class NotifyConfig(Base):
    urls: list[SecretStr] = []
    group_window: Duration = 30.0
    repeat_interval: Duration = 4 * 3600.0
    expiry: Duration = 24 * 3600.0


class RuleOverride(Base):
    threshold: float | None = None
    clear: float | None = None
    for_: Duration | None = Field(None, alias="for")
    keep_firing_for: Duration | None = None
    severity: Literal["critical", "warning", "info"] | None = None
    enabled: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Config(Base):
    agent: AgentConfig = AgentConfig()
    system: SystemConfig = SystemConfig()
    databases: list[DatabaseConfig] = []
    sqlite: list[SQLiteConfig] = []
    services: list[ServiceConfig] = []
    tls: TlsConfig = TlsConfig()
    jobs: list[PushJobConfig] = []
    backups: list[BackupTargetConfig] = []
    logs: list[LogConfig] = []
    notify: NotifyConfig = NotifyConfig()
    rules: dict[str, RuleOverride] = {}

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        for section in ("databases", "sqlite", "services", "jobs", "backups"):
            names = [item.name for item in getattr(self, section)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{section}: duplicate name(s) {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _files_sections(self) -> "Config":
        apps = [log.app for log in self.logs]
        dupes = sorted({a for a in apps if apps.count(a) > 1})
        if dupes:
            raise ValueError(f"logs: duplicate app(s) {', '.join(dupes)}")
        profiles = {d.name: d.profile for d in self.databases} | {s.name: s.profile for s in self.sqlite}
        for i, b in enumerate(self.backups):
            if b.database is not None and b.database not in profiles:
                raise ValueError(f"backups[{i}].database: no databases or sqlite entry named {b.database!r}")
            if b.directory is None and profiles.get(b.database) != "aperture":
                raise ValueError(f"backups[{i}].directory: required unless database has profile aperture")
        return self

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: dict[str, RuleOverride]) -> dict[str, RuleOverride]:
        from agent.rules.model import default_rules  # the rules module imports this one

        unknown = sorted(set(rules) - {r.name for r in default_rules()})
        if unknown:
            raise ValueError(f"unknown rule name(s): {', '.join(unknown)}")
        return rules


def _expand_env(node: Any, path: str, errors: list[str]) -> Any:
    """Replace ``${VAR}`` in every string; a missing variable is an error naming the field, not the value."""
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", errors) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in os.environ:
                errors.append(f"{path}: environment variable {m.group(1)} is not set")
                return ""
            return os.environ[m.group(1)]
        return _ENV_REF.sub(sub, node)
    return node


def format_loc(loc: tuple[Any, ...]) -> str:
    """``('services', 2, 'api_key')`` → ``services[2].api_key``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_config(data: Any) -> Config:
    """Validate a parsed YAML tree; raises ConfigError with one line per problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["(top level): expected a mapping of sections"])
    errors: list[str] = []
    data = _expand_env(data, "", errors)
    if errors:
        raise ConfigError(errors)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{format_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]) from None


def load_config(path: str | Path | None) -> Config:
    """Load and validate a YAML file; None gives the embedded default (watch this host)."""
    if path is None:
        return Config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: invalid YAML{where}"]) from None
    return parse_config(data)
