"""The action contract (DESIGN.md §8): what every maintenance action declares and implements.

An action declares its name, a description, its parameters (a pydantic model, unknown keys refused),
the shape of its result (a pydantic model), whether it is destructive, and whether a run scoped to a
firing alert is safe without a human (`auto_safe`). It implements `plan` (read-only: the exact
statements, rows, files and bytes a run would touch) and `execute` (carry out exactly that plan). The
runner (agent/actions/runner.py) adds the lock, the dry run, the timeout, the audit and the metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from agent.actions.targets import Target
    from agent.config import Config


class ActionError(Exception):
    """A run that cannot start. `status` is the HTTP status the API answers (400 bad input, 404 unknown
    action or target, 409 a precondition does not hold); the message says why and names the field."""

    status = 400

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class Refused(ActionError):
    """A precondition does not hold (no fresh verified backup, no active embedding model…): nothing ran."""

    status = 409


class ActionFailed(Exception):
    """Raised by `execute` when the run did not achieve its purpose; `result` is what it did achieve."""

    def __init__(self, reason: str, result: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.result = result


class Params(BaseModel):
    """Base of every action's parameters: unknown keys are an error naming the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ResultModel(BaseModel):
    """Base of every action's declared result shape."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


@dataclass
class Progress:
    """Items done of `total` in the current `phase`; read by the API and the CLI while the run goes on."""

    done: int = 0
    total: int | None = None
    phase: str = ""
    version: int = field(default=0, repr=False)

    def start(self, phase: str, total: int | None) -> None:
        self.phase, self.total, self.done = phase, total, 0
        self.version += 1

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.version += 1

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "total": self.total, "phase": self.phase}


@dataclass
class Context:
    """What a run sees: the target, validated params, the runtime's shared parts and its progress."""

    target: Target
    params: Any
    deps: Any  # the Runtime: config, http, state, store, clock, probes
    progress: Progress
    run_id: int
    timeout: float

    @property
    def config(self) -> Config:
        return self.deps.config

    @property
    def http(self):
        return self.deps.http

    def now(self) -> float:
        return self.deps.clock()


class Action(ABC):
    """One maintenance action. Subclasses set the class attributes and implement plan/execute."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    Result: ClassVar[type[BaseModel]]
    destructive: ClassVar[bool] = False
    # True when a run scoped to the alert that fired is safe without a human: only then may a
    # destructive action run automatically without the config saying so explicitly.
    auto_safe: ClassVar[bool] = False
    timeout: ClassVar[float] = 3600.0
    # Alert labels naming the target, tried in order (database=aperture, app=tsundoku, target=…).
    target_labels: ClassVar[tuple[str, ...]] = ()
    # Alerts a scheduled run is expected to trip, as (alertname, label naming the target or None); the
    # calendar silences them (for this target when a label is given) while the run goes on.
    trips: ClassVar[tuple[tuple[str, str | None], ...]] = ()

    @abstractmethod
    def targets(self, config: Config) -> dict[str, Target]:
        """The configured targets this action can act on, by name."""

    def alert_params(self, labels: dict[str, str]) -> dict[str, Any]:
        """Params that scope a remediation run to the alert's series (a relation, a job)."""
        return {}

    async def check(self, ctx: Context) -> None:
        """Preconditions, checked before the plan; raise Refused to stop before anything runs."""

    @abstractmethod
    async def plan(self, ctx: Context) -> dict[str, Any]:
        """Read-only: the exact work a run would do (statements, rows, files, bytes, requests)."""

    @abstractmethod
    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        """Carry out `plan`; returns a result of shape `Result`; raises ActionFailed when it falls short."""

    def summary(self, target: str, result: dict[str, Any]) -> str:
        """What a run did, after the action's name in a notification ("on movies: dead tuples 31 042 → 0")."""
        facts = ", ".join(f"{k} {v}" for k, v in result.items() if isinstance(v, (int, float, str)))
        return f"on {target}" + (f": {facts}" if facts else "")

    def samples(self, state) -> list:
        """Series of this action's own findings, derived from the audit in the state file (verify_backup:
        caretaker_backup_verified); published with the runner's caretaker_action_* series."""
        return []

    def describe(self, config: Config) -> dict[str, Any]:
        """The action as `caretaker action list` and `GET /api/v1/actions` show it."""
        return {"name": self.name, "description": self.description, "destructive": self.destructive,
                "auto_safe": self.auto_safe, "timeout_seconds": timeout_for(self, config),
                "targets": sorted(self.targets(config)), "params": self.Params.model_json_schema(),
                "result": self.Result.model_json_schema()}


def timeout_for(action: Action, config: Config) -> float:
    return config.actions.timeouts.get(action.name, action.timeout)


def thousands(n: float) -> str:
    """``31042`` → ``31 042`` (the notification style of DESIGN.md §2)."""
    return f"{n:,.0f}".replace(",", " ")
