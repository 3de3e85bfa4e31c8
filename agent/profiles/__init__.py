"""App profiles: where an app keeps its jobs, queues, posters and embeddings, as data (DESIGN.md §5).

A profile is a YAML file (format: `agent/profiles/README.md`) read by the generic probes:

```yaml
name: myapp
engine: postgres            # postgres | sqlite | api (no database: only API calls)
jobs:                       # read-only SQL; every query may use :now and :since (epoch seconds)
  grace: 1h
  freshness: SELECT name AS job, 'cron' AS kind, cron, last_ok AS last_success_at FROM tasks
  failures: SELECT count(*) FILTER (WHERE failed) AS failed, count(*) AS finished FROM runs WHERE ...
  running: SELECT name AS job, started_at FROM runs WHERE state = 'running'
  durations: SELECT name AS job, seconds AS duration_seconds FROM runs WHERE state = 'done'
queues: [{name: uploads, sql: "SELECT count(*) AS length, min(created_at) AS oldest_at FROM ..."}]
posters: {missing: ..., tags: ...}
embeddings: {relations: ..., active_model: ..., model_dimensions: {model-name: 768}}
api: {auth: bearer, running_jobs: {path: /api/jobs/active, job: name, started_at: startedAt}}
actions: {clear_stuck_jobs: "UPDATE ...", cancel_job: {method: POST, path: /api/jobs/{job}/cancel}}
```

`load_profile(name_or_path)` returns a validated `Profile` (a built-in name: aperture, aphrodite, tsundoku,
jellyfin; or the path of the user's own YAML file) or raises `ProfileError` whose lines name each bad
field (``jobs.freshness: …``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from agent.config import Duration, TimeZone, format_loc

BUILTIN_DIR = Path(__file__).parent
# Read queries run in read-only sessions anyway; refusing anything else up front gives a clear error.
_READ_ONLY = re.compile(r"^\s*(?:--[^\n]*\n\s*)*(?:select|with|values)\b", re.IGNORECASE)


class ProfileError(Exception):
    """A profile that cannot be used; `errors` is a list of ``"field: message"`` lines."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_only(value: str) -> str:
    if not _READ_ONLY.match(value):
        raise ValueError("must be a read-only query starting with SELECT or WITH")
    return value


ReadSQL = Annotated[str, AfterValidator(_read_only)]


class ApiCall(_Model):
    """One call to the app's API; `path` may hold `{job}` (filled in by actions)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/")


class RunningJobsCall(ApiCall):
    """A GET that lists the runs in progress: a JSON list (or the list at dotted path `items`) of objects
    whose `job` key holds the job name and `started_at` key its start (ISO-8601 or epoch seconds)."""

    items: str = ""
    job: str
    started_at: str


class ApiSection(_Model):
    """How to reach the app's own HTTP API, through the service named in the config's `app.api`."""

    # How the service's api_key is sent: `Authorization: Bearer K`, Jellyfin's `Authorization:
    # MediaBrowser Token="K"`, Emby's `X-Emby-Token: K`, or not at all.
    auth: Literal["bearer", "mediabrowser", "x-emby-token", "none"] = "bearer"
    running_jobs: RunningJobsCall | None = None


class JobsSection(_Model):
    """Job queries (columns in the profile README). Each is optional; a missing one exports nothing."""

    grace: Duration = 3600.0
    timezone: TimeZone = "UTC"  # of the app's schedules, unless a row names its own
    freshness: ReadSQL | None = None
    failures: ReadSQL | None = None
    running: ReadSQL | None = None
    durations: ReadSQL | None = None


class QueueQuery(_Model):
    name: str
    sql: ReadSQL



class PostersSection(_Model):
    missing: ReadSQL  # rows (kind, missing)
    tags: ReadSQL | None = None  # rows (kind, item_id, tag): compared with the media server's current tags



class EmbeddingsSection(_Model):
    relations: ReadSQL  # rows (relation, dimension, legacy, rows, size_bytes)
    active_model: ReadSQL | None = None  # one row (model[, dimension])
    model_dimensions: dict[str, int] = {}



class MediaServerSection(_Model):
    """A media server's own API (the jellyfin profile): scheduled tasks and the library's items."""

    auth: Literal["mediabrowser", "x-emby-token"] = "mediabrowser"
    scheduled_tasks: str = Field("/ScheduledTasks", pattern=r"^/")
    items: str = Field("/Items", pattern=r"^/")
    item_types: list[str] = ["Movie", "Series"]
    page_size: int = Field(500, ge=1, le=10_000)
    concurrency: int = Field(4, ge=1, le=16)  # pages fetched at once: enough to be quick, gentle on the server


class Profile(_Model):
    name: str
    description: str = ""
    engine: Literal["postgres", "sqlite", "api"]
    jobs: JobsSection | None = None
    queues: list[QueueQuery] = []
    posters: PostersSection | None = None
    embeddings: EmbeddingsSection | None = None
    api: ApiSection | None = None
    media_server: MediaServerSection | None = None
    # Named write statements (SQL text) or API calls, run only by actions (agent/actions), never by probes.
    actions: dict[str, str | ApiCall] = {}


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _is_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml"))


def load_profile(ref: str | Path) -> Profile:
    """A built-in profile by name, or the profile in the YAML file at path `ref`. Raises ProfileError.

    Cached by `ref` as text (a Profile is frozen): probes and every remediation decision ask for it, and
    parsing costs milliseconds. A failure is not cached; a profile file edited later is read on restart."""
    return _load_profile(str(ref))


@functools.lru_cache(maxsize=64)
def _load_profile(text_ref: str) -> Profile:
    if _is_path(text_ref):
        path = Path(text_ref).expanduser()
    else:
        path = BUILTIN_DIR / f"{text_ref}.yaml"
        if not path.is_file():
            raise ProfileError([f"unknown profile {text_ref!r}: built-in ones are {', '.join(builtin_names())}, "
                                "or give the path of a YAML file"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError([f"{path}: cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProfileError([f"{path}: invalid YAML{where}"]) from None
    if not isinstance(data, dict):
        raise ProfileError([f"{path}: expected a mapping with name, engine, …"])
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError([f"{path.name}: {format_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]) from None
