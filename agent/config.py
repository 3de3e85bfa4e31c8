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


ServiceKind = Literal[
    "jellyfin", "emby", "tmdb", "omdb", "mdblist", "anidb", "trakt", "openai",
    "aperture", "aphrodite", "tsundoku", "http",
]


class HttpExpect(Base):
    status: list[int] = [200]
    json_path: str | None = None  # dotted path, e.g. "status"
    json_value: Any = None
    body_regex: str | None = None
    max_latency: Duration | None = None


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
    jobs: list[PushJobConfig] = []
    notify: NotifyConfig = NotifyConfig()
    rules: dict[str, RuleOverride] = {}

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        for section in ("databases", "sqlite", "services", "jobs"):
            names = [item.name for item in getattr(self, section)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{section}: duplicate name(s) {', '.join(dupes)}")
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
