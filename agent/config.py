"""Configuration: pydantic models (extra="forbid"), YAML loading, ``${ENV}`` and ``*_file`` secrets (DESIGN.md §4).

`load_config(path)` returns a validated `Config` or raises `ConfigError`, whose `errors` name each bad
field by its path (``services[2].api_key: field required``). Secret values are `SecretStr` everywhere
and never appear in an error message: errors quote the field path, not the input.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError,
                      field_validator, model_validator)

from agent.durations import parse_duration
from agent.freshness import check_cron, check_timezone

Duration = Annotated[float, BeforeValidator(parse_duration)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
# Five-field cron (or an @daily-style macro, stored as its five fields): the rules freshness evaluates with.
Cron = Annotated[str, AfterValidator(check_cron)]
TimeZone = Annotated[str, AfterValidator(check_timezone)]  # an IANA name; "unknown time zone …" otherwise


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_regex)]

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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        if self.admin_token is None and not _is_loopback(self.host_port[0]):
            raise ValueError(f"listen: {self.listen} is not a loopback address; "
                             "set agent.admin_token (or admin_token_file) to listen beyond this host")
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
    schedule: Cron = "0 4 * * 0"
    parent_check: bool = False  # bt_index_parent_check takes ShareLock: blocks writes (LIBRARIES.md B6)
    heapallindexed: bool = False
    lock_timeout: Duration = 5.0
    statement_timeout: Duration = 300.0


class AppProbesConfig(Base):
    """The profile-driven probes of the app behind a `databases:` or `sqlite:` entry (jobs, queues, content);
    the entry's `name` is their `app` label. Defaults come from the profile (agent/profiles/README.md)."""

    api: str | None = None  # the service (e.g. kind aperture) whose API reports what the app keeps in memory
    # jellyfin/emby service whose current image tags the app's stored poster tags are compared with;
    # None: the only jellyfin/emby service, when exactly one is configured.
    media_server: str | None = None
    timezone: TimeZone | None = None  # of the app's schedules; None: the profile's (rows may name their own)
    grace: Duration | None = None  # None: the profile's (Healthchecks' default is 1h)
    # Per job: "manual", a period ("6h") or a cron expression; overrides or supplies the app's own schedule.
    schedules: dict[str, str] = {}
    failure_window: Duration = 86400.0  # jobs_failed and job_error_ratio count runs finished this recently
    # A run is stuck past a fixed limit (per job name, "*" for every job), else past stuck_factor × the job's
    # median duration but never below stuck_floor; a job with no finished run to learn from gets stuck_default.
    stuck_after: dict[str, Duration] = {}
    stuck_factor: float = Field(5.0, ge=1.0)
    stuck_floor: Duration = 600.0
    stuck_default: Duration = 3600.0
    interval: Duration = 60.0  # jobs and queues
    content_interval: Duration = 3600.0  # posters and embeddings: they change slowly, and paging a media server costs
    content_timeout: Duration = 120.0

    @field_validator("schedules")
    @classmethod
    def _schedules(cls, value: dict[str, str]) -> dict[str, str]:
        from agent.freshness import parse_schedule_text

        for job, text in value.items():
            try:
                parse_schedule_text(text)
            except ValueError as exc:
                raise ValueError(f"{job}: {exc}") from None
        return value


def _profile_of(engine: str):
    """A validator: the profile must load, and read the engine of the entry it is set on."""

    def check(ref: str | None) -> str | None:
        if ref is None:
            return None
        from agent.profiles import ProfileError, load_profile  # profiles import this module

        try:
            profile = load_profile(ref)
        except ProfileError as exc:
            raise ValueError("; ".join(exc.errors)) from None
        if profile.engine != engine:
            raise ValueError(f"profile {profile.name!r} reads a {profile.engine} database, not {engine}")
        return ref

    return AfterValidator(check)


class DatabaseConfig(Base):
    name: str
    dsn: SecretStr
    profile: Annotated[str | None, _profile_of("postgres")] = None
    app: AppProbesConfig = AppProbesConfig()
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
    profile: Annotated[str | None, _profile_of("sqlite")] = None
    app: AppProbesConfig = AppProbesConfig()
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
    level_regex: Regex | None = None  # None: the built-in one of agent/probes/logs.py
    json_level_field: str = "level"  # JSON lines: the key holding the level
    # A file seen when the app is first configured starts at its end: old lines are history, not news.
    start_at: Literal["end", "beginning"] = "end"
    window: Duration = 900.0
    max_bytes_per_run: int = Field(16 * 1024 * 1024, ge=4096)  # a huge backlog never stalls a round
    interval: Duration = 30.0
    timeout: Duration = 30.0


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
    body_regex: Regex | None = None  # re.search on the body text
    max_latency: Duration | None = None  # a slower answer is the outcome `timeout`


class ServiceConfig(Base):
    name: str
    kind: ServiceKind
    url: str | None = None  # defaults to the public API for metadata kinds
    api_key: SecretStr | None = None
    # Bearer token of the app's admin API (Tsundoku's maintenance endpoints, Aperture's job API).
    admin_token: SecretStr | None = None
    client: str | None = None  # AniDB client name (registered with AniDB)
    client_version: str | None = None
    interval: Duration = 60.0
    timeout: Duration = 10.0
    error_window: Duration = 900.0
    expect: HttpExpect | None = None
    timezone: TimeZone = "UTC"  # the media server's local zone: Jellyfin runs daily/weekly task triggers in it

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
    """A cron script that reports through `POST /api/v1/ping/{name}[/start|/fail]` (Healthchecks style)."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")  # it is a URL path segment
    schedule: Cron | None = None  # cron expression, evaluated in `timezone`
    period: Duration | None = None  # or a plain period between runs
    grace: Duration = 3600.0
    timezone: TimeZone = "UTC"
    app: str = "cron"  # the `app` label of its series
    # Its own ping token (Authorization: Bearer …); without one, pings need the admin token.
    token: SecretStr | None = None
    max_runtime: Duration | None = None  # a run started (/start) longer ago is stuck; None: `grace`, as Healthchecks

    @model_validator(mode="after")
    def _one_schedule(self) -> "PushJobConfig":
        if (self.schedule is None) == (self.period is None):
            raise ValueError("give exactly one of schedule (cron) or period")
        return self


def _apprise_url(value: SecretStr) -> SecretStr:
    from agent.notify.routes import parse_destination  # imports apprise: only when URLs are configured

    parse_destination(value.get_secret_value())  # ValueError names the problem, never the URL
    return value


def _matchers(value: list[str]) -> list[str]:
    from agent.notify.silences import parse_matcher

    for text in value:
        parse_matcher(text)
    return value


class MaintenanceWindow(Base):
    """A recurring window in which matching alerts are silenced: starts at each `schedule` slot (cron, in
    `timezone`) and lasts `duration`. No matchers: every alert."""

    name: str
    schedule: Cron
    duration: Duration
    timezone: TimeZone = "UTC"
    matchers: Annotated[list[str], AfterValidator(_matchers)] = []  # "alertname=PostgresDown", "database=~aperture.*"


class NotifyConfig(Base):
    # Apprise URLs; "critical=ntfy://…" (Apprise's TAG=URL text syntax) sends only critical alerts there,
    # a URL without a severity tag (critical, warning, info) gets every alert.
    urls: list[Annotated[SecretStr, AfterValidator(_apprise_url)]] = []
    group_window: Duration = 30.0  # after a message, further transitions on that route wait this long → one digest
    repeat_interval: Duration = 4 * 3600.0  # re-send a still-firing alert this often
    expiry: Duration = 24 * 3600.0  # give up on an undeliverable notification after this long (counted, logged)
    send_timeout: Duration = 30.0  # one Apprise call; Apprise's own socket timeouts are 4 s (cto/rto URL args)
    retry_initial: Duration = 5.0  # backoff after the first failed attempt on a destination, doubling…
    retry_max: Duration = 600.0  # …up to this, with jitter (×0.5–1.0)
    # More than `flap_changes` firing/resolved changes within `flap_window` → one "flapping" message, the
    # rest held until the alert settles (at most half as many changes in the window).
    flap_changes: int = Field(4, ge=2)
    flap_window: Duration = 3600.0
    maintenance_windows: list[MaintenanceWindow] = []


class RuleOverride(Base):
    threshold: float | None = None
    clear: float | None = None
    for_: Duration | None = Field(None, alias="for")
    keep_firing_for: Duration | None = None
    severity: Literal["critical", "warning", "info"] | None = None
    enabled: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _known_actions(names: list[str], field: str) -> None:
    from agent.actions import ACTIONS  # the actions import this module

    unknown = sorted(set(names) - set(ACTIONS))
    if unknown:
        where = f"{field}: " if field else ""
        raise ValueError(f"{where}unknown action(s) {', '.join(unknown)}; known: {', '.join(sorted(ACTIONS))}")


def _known_params(action: str, params: dict[str, Any], field: str) -> None:
    """Raise ValueError naming `field.key` when `params` do not fit the action's parameters."""
    from agent.actions import ACTIONS

    try:
        ACTIONS[action].Params.model_validate(params)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{field}.{format_loc(e['loc'])}: {e['msg']}" for e in exc.errors())) from None


class ActionsConfig(Base):
    """Settings of the maintenance actions (DESIGN.md §8) that the other sections do not already give."""

    timeouts: dict[str, Duration] = {}  # per action name; default: the action's own (agent/actions/*.py)
    # App name → its cover/poster cache directory, for invalidate_cover_cache when the app has no endpoint.
    cover_cache_dirs: dict[str, Path] = {}

    @field_validator("timeouts")
    @classmethod
    def _timeouts_of_known_actions(cls, value: dict[str, float]) -> dict[str, float]:
        _known_actions(list(value), "timeouts")
        return value


class MaintenanceTask(Base):
    """One entry of the maintenance calendar: run `action` on its targets at each `schedule` slot."""

    action: str | None = None  # default: the built-in task's action
    schedule: Cron | None = None  # cron, in maintenance.timezone
    targets: list[str] = []  # empty: every configured target of the action
    params: dict[str, Any] = {}
    then: list[str] = []  # actions run on the same target after a successful run, in order
    enabled: bool = True


# The seed workflow's calendar: backup first at 01:00 (before the apps' 02:00 syncs) and verify it;
# VACUUM ANALYZE weekly on Sunday 03:00; posters daily after the nightly syncs and library builds.
# The weekly integrity check (amcheck) follows databases[].integrity.schedule.
DEFAULT_MAINTENANCE: dict[str, dict[str, Any]] = {
    "backup": {"action": "backup", "schedule": "0 1 * * *", "then": ["verify_backup"]},
    "vacuum": {"action": "vacuum_analyze", "schedule": "0 3 * * 0"},
    "posters": {"action": "poster_repair", "schedule": "30 6 * * *"},
}


class MaintenanceConfig(Base):
    enabled: bool = True
    timezone: TimeZone = "UTC"
    tasks: dict[str, MaintenanceTask] = {}  # merged over DEFAULT_MAINTENANCE by name, field by field

    @property
    def effective_tasks(self) -> dict[str, MaintenanceTask]:
        """The calendar: built-in tasks with the config's fields applied, plus the config's own tasks."""
        out = {name: MaintenanceTask(**spec) for name, spec in DEFAULT_MAINTENANCE.items()}
        for name, task in self.tasks.items():
            base = out.get(name, MaintenanceTask())
            out[name] = base.model_copy(update={k: getattr(task, k) for k in task.model_fields_set})
        return out

    @model_validator(mode="after")
    def _complete_tasks(self) -> "MaintenanceConfig":
        for name, task in self.effective_tasks.items():
            if name not in self.tasks:
                continue  # the built-in tasks are known to be complete
            if task.action is None or task.schedule is None:
                raise ValueError(f"tasks.{name}: action and schedule are required for a new task")
            _known_actions([task.action, *task.then], f"tasks.{name}")
            _known_params(task.action, task.params, f"tasks.{name}.params")
        return self


class RemediationPolicy(Base):
    """How an alert's remediation runs (DESIGN.md §2, §8): Monit's "N times within M, then stop and escalate"."""

    action: str | None = None  # default: the rule's remediation action (agent/rules/defaults.yaml)
    # None: the rule's default, which never runs a destructive action unless the action is safe when
    # scoped to the alert (clear_stuck_jobs). true runs even a destructive action automatically.
    auto: bool | None = None
    params: dict[str, Any] = {}
    cooldown: Duration = 900.0  # at least this long between two runs for the same alert
    max_runs: int = Field(3, ge=1)  # at most this many runs for one alert within `window`…
    window: Duration = 3600.0  # …then stop and send one critical notification
    dry_run: bool = False  # plan only: the audit and the alert's next notification show what would run

    @field_validator("action")
    @classmethod
    def _action_known(cls, value: str | None) -> str | None:
        if value is not None:
            _known_actions([value], "")
        return value


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
    actions: ActionsConfig = ActionsConfig()
    maintenance: MaintenanceConfig = MaintenanceConfig()
    remediation: dict[str, RemediationPolicy] = {}

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        for section in ("databases", "sqlite", "services", "jobs", "backups"):
            names = [item.name for item in getattr(self, section)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{section}: duplicate name(s) {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _app_links(self) -> "Config":
        """`app.api` and `app.media_server` must name services of a fitting kind."""
        kinds = {s.name: s.kind for s in self.services}
        for section in ("databases", "sqlite"):
            for i, entry in enumerate(getattr(self, section)):
                api, media = entry.app.api, entry.app.media_server
                if api is not None and api not in kinds:
                    raise ValueError(f"{section}[{i}].app.api: no service named {api!r}")
                if media is not None and kinds.get(media) not in ("jellyfin", "emby"):
                    raise ValueError(f"{section}[{i}].app.media_server: no jellyfin or emby service named {media!r}")
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

    @field_validator("remediation")
    @classmethod
    def _remediation_rules(cls, policies: dict[str, RemediationPolicy]) -> dict[str, RemediationPolicy]:
        from agent.rules.model import default_rules

        rules = {r.name: r for r in default_rules()}
        for name, policy in policies.items():
            if name not in rules:
                raise ValueError(f"{name}: unknown rule name")
            if policy.action is None and rules[name].remediation is None:
                raise ValueError(f"{name}.action: required, the rule has no default remediation")
            _known_params(policy.action or rules[name].remediation.action, policy.params, f"{name}.params")
        return policies


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
