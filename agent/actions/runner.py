"""The action runner: lock, dry run, timeout, progress, audit and metrics around every action (DESIGN.md §8).

- **Lock**: one run per action and target, held as a row of `action_locks` in the state file, so the
  agent and a `caretaker action run` in another process exclude each other. A second trigger answers
  ``{"triggered": false, "reason": "running", "run_id": …}``. A lock whose holder process is gone (a crash,
  kill -9) is recovered at start-up and on the next trigger; its run is marked `interrupted`.
- **Dry run**: check + plan only; nothing is written to the target and no lock is taken.
- **Timeout**: per action (`timeout` of the action, or `actions.timeouts.<name>`); outcome `timeout`.
- **Audit**: every run is a row of `action_runs`: trigger (cli|api|schedule|alert|alertmanager), who,
  params, start, end, outcome, result or error. Errors never carry a secret (DSN passwords are redacted).
- **Metrics** (source ("agent", "actions")): `caretaker_action_runs_total{action,outcome}`,
  `caretaker_action_last_run_timestamp_seconds{action}`, `caretaker_action_running{action}`, from the
  state file, so runs made by the CLI count too. Dry runs are audited but not counted.

Outcomes: succeeded, failed, refused, timeout, cancelled, interrupted (finished runs); planned (dry runs).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import psutil
import psycopg
from pydantic import ValidationError

from agent.actions import ACTIONS
from agent.actions.base import Action, ActionError, ActionFailed, Context, Progress, Refused, timeout_for
from agent.actions.targets import Target
from agent.config import format_loc
from agent.pg import describe_pg_error, redact
from agent.probes.base import describe_error
from agent.samples import sample

log = logging.getLogger("caretaker.actions")

TRIGGERS = ("cli", "api", "schedule", "alert", "alertmanager")
SOURCE = ("agent", "actions")
PROGRESS_SAVE_SECONDS = 1.0
CANCELLED = "cancelled (agent shutting down)"
_LIVE: set[tuple[str, int]] = set()  # (state file, run id) of runs executing in this process


@dataclass(frozen=True)
class Prepared:
    """A validated request: the action, its target, parsed params, and whether it is a dry run."""

    action: Action
    target: Target
    params: Any
    dry_run: bool


@dataclass
class LiveRun:
    run_id: int
    prepared: Prepared
    progress: Progress
    task: asyncio.Task | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _own_identity() -> tuple[int, float]:
    me = psutil.Process()
    return me.pid, me.create_time()


def _params_error(exc: ValidationError) -> str:
    return "; ".join(f"params.{format_loc(e['loc'])}: {e['msg']}" for e in exc.errors())


class ActionRunner:
    """Runs actions for a Runtime `deps` (config, state, store, clock, http; exporter optional)."""

    def __init__(self, deps):
        self.deps = deps
        self.state = deps.state
        self.ident = _own_identity()
        self.live: dict[int, LiveRun] = {}
        self.recover()

    # -- validation -------------------------------------------------------------------------------

    def prepare(self, name: str, target: str | None = None, params: dict[str, Any] | None = None, *,
                confirm: bool = False, dry_run: bool = False) -> Prepared:
        """Validate a request; raises ActionError (404 unknown action/target, 400 bad params or no confirm)."""
        action = ACTIONS.get(name)
        if action is None:
            raise ActionError(f"unknown action {name!r}; known: {', '.join(sorted(ACTIONS))}", 404)
        targets = action.targets(self.deps.config)
        if target is None:
            if len(targets) != 1:
                raise ActionError(f"target: {name} has no configured target" if not targets else
                                  f"target: required, one of {', '.join(sorted(targets))}",
                                  404 if not targets else 400)
            target = next(iter(targets))
        elif target not in targets:
            known = ", ".join(sorted(targets)) or "none configured"
            raise ActionError(f"target: {target!r} is not a target of {name} (known: {known})", 404)
        try:
            parsed = action.Params.model_validate(params or {})
        except ValidationError as exc:
            raise ActionError(_params_error(exc)) from None
        if action.destructive and not dry_run and not confirm:
            raise ActionError(f"confirm: {name} is destructive; confirm with confirm: true (CLI: --yes), "
                              "or look first with a dry run")
        return Prepared(action, targets[target], parsed, dry_run)

    # -- running ----------------------------------------------------------------------------------

    async def start(self, prep: Prepared, trigger: str, who: str, alert: str | None = None) -> dict[str, Any]:
        """Start a run in the background after its preconditions hold.

        Returns ``{"triggered": true, "run_id"}``, or ``{"triggered": false, "reason": "running", "run_id"}``
        when a run of the same action and target holds the lock. A dry run finishes before returning
        (``{"triggered": true, "run_id", "outcome", "plan", "error"}``). Raises ActionError when the action's
        check refuses (Refused, 409, for a precondition; 400 for a bad param); the refusal is audited."""
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}")
        run_id, holder = self._begin(prep, trigger, who, alert)
        if holder is not None:
            return {"triggered": False, "reason": "running", "run_id": holder}
        live = self.live[run_id]
        timeout = timeout_for(prep.action, self.deps.config)
        ctx = Context(prep.target, prep.params, self.deps, live.progress, run_id, timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                await prep.action.check(ctx)
        except ActionError as exc:
            self._finish(live, "refused", None, exc.reason)
            raise
        except asyncio.CancelledError:
            self._finish(live, "cancelled", None, CANCELLED)
            raise
        except Exception as exc:
            outcome, error = self._failure(exc, timeout)
            self._finish(live, outcome, None, error)
            raise Refused(f"could not check the preconditions: {error}") from None
        if prep.dry_run:
            await self._body(live, ctx, deadline)
            record = self.get_run(run_id)
            return {"triggered": True, "run_id": run_id, "outcome": record["outcome"], "plan": record["result"],
                    "error": record["error"]}
        live.task = asyncio.create_task(self._body(live, ctx, deadline), name=f"action:{prep.action.name}:{run_id}")
        return {"triggered": True, "run_id": run_id}

    async def run(self, prep: Prepared, trigger: str, who: str, alert: str | None = None) -> dict[str, Any]:
        """Start and wait for the end; returns the run record (see get_run), or the start answer when the
        lock was held (``triggered: false``)."""
        started = await self.start(prep, trigger, who, alert)
        if not started["triggered"] or prep.dry_run:
            return started if not started["triggered"] else self.get_run(started["run_id"])
        await self.wait(started["run_id"])
        return self.get_run(started["run_id"])

    async def wait(self, run_id: int) -> None:
        live = self.live.get(run_id)
        if live is not None:
            await live.done.wait()

    async def cancel_all(self) -> None:
        """Cancel every run of this process (agent shutdown); they end as `cancelled`, locks released."""
        tasks = [live.task for live in self.live.values() if live.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def service(self, stop: asyncio.Event) -> None:
        """Runtime service: on shutdown, stop the runs still going instead of leaving their locks."""
        try:
            await stop.wait()
        finally:
            await self.cancel_all()

    async def _body(self, live: LiveRun, ctx: Context, deadline: float) -> None:
        action = live.prepared.action
        saver = asyncio.create_task(self._save_progress(live))
        outcome, result, error = "failed", None, None
        try:
            async with asyncio.timeout_at(deadline):
                plan = await action.plan(ctx)
                if live.prepared.dry_run:
                    outcome, result = "planned", plan
                else:
                    raw = await action.execute(ctx, plan)
                    result = action.Result.model_validate(raw).model_dump(by_alias=True, mode="json")
                    outcome = "succeeded"
        except ActionFailed as exc:
            outcome, result, error = "failed", exc.result, exc.reason
        except ActionError as exc:
            outcome, error = "refused", exc.reason
        except asyncio.CancelledError:
            outcome, error = "cancelled", CANCELLED
            raise
        except Exception as exc:
            log.debug("action %s on %s raised", action.name, ctx.target.name, exc_info=True)
            outcome, error = self._failure(exc, ctx.timeout)
        finally:
            saver.cancel()
            self._finish(live, outcome, result, error)

    @staticmethod
    def _failure(exc: Exception, timeout: float) -> tuple[str, str]:
        if isinstance(exc, TimeoutError):
            return "timeout", f"timed out after {timeout:g}s"
        if isinstance(exc, psycopg.Error):
            return "failed", describe_pg_error(exc)
        return "failed", redact(describe_error(exc))

    async def _save_progress(self, live: LiveRun) -> None:
        seen = -1
        while True:
            await asyncio.sleep(PROGRESS_SAVE_SECONDS)
            if live.progress.version != seen:
                seen = live.progress.version
                p = live.progress
                with self.state.tx() as db:
                    db.execute("UPDATE action_runs SET progress_done = ?, progress_total = ?, progress_phase = ? "
                               "WHERE id = ?", (p.done, p.total, p.phase, live.run_id))

    # -- state file -------------------------------------------------------------------------------

    def _begin(self, prep: Prepared, trigger: str, who: str, alert: str | None) -> tuple[int, int | None]:
        """Insert the run row and take the lock in one transaction; returns (run_id, holder or None)."""
        name, target = prep.action.name, prep.target.name
        params = json.dumps(prep.params.model_dump(mode="json"), sort_keys=True)
        with self.state.tx() as db:
            if not prep.dry_run:
                row = db.execute("SELECT l.run_id, r.pid, r.pid_started FROM action_locks l JOIN action_runs r "
                                 "ON r.id = l.run_id WHERE l.action = ? AND l.target = ?", (name, target)).fetchone()
                if row is not None:
                    if self._alive(row["pid"], row["pid_started"], row["run_id"]):
                        return row["run_id"], row["run_id"]
                    self._interrupt(db, row["run_id"])
            cur = db.execute(
                "INSERT INTO action_runs (action, target, trigger, who, params, dry_run, alert, started_at, outcome, "
                "pid, pid_started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                (name, target, trigger, who, params, int(prep.dry_run), alert, self.deps.clock(), *self.ident))
            run_id = cur.lastrowid
            if not prep.dry_run:
                db.execute("INSERT INTO action_locks VALUES (?, ?, ?)", (name, target, run_id))
        self.live[run_id] = LiveRun(run_id, prep, Progress())
        _LIVE.add((str(self.state.path), run_id))
        log.info("action %s on %s started (run %d, %s by %s%s)", name, target, run_id, trigger, who,
                 ", dry run" if prep.dry_run else "")
        self.publish()
        return run_id, None

    def _finish(self, live: LiveRun, outcome: str, result: Any, error: str | None) -> None:
        p = live.progress
        with self.state.tx() as db:
            db.execute("UPDATE action_runs SET finished_at = ?, outcome = ?, result = ?, error = ?, progress_done = ?, "
                       "progress_total = ?, progress_phase = ? WHERE id = ?",
                       (self.deps.clock(), outcome, None if result is None else json.dumps(result), error, p.done,
                        p.total, p.phase, live.run_id))
            db.execute("DELETE FROM action_locks WHERE run_id = ?", (live.run_id,))
        _LIVE.discard((str(self.state.path), live.run_id))
        self.live.pop(live.run_id, None)
        live.done.set()
        action = live.prepared.action.name
        level = logging.INFO if outcome in ("succeeded", "planned") else logging.WARNING
        log.log(level, "action %s on %s %s (run %d)%s", action, live.prepared.target.name, outcome, live.run_id,
                f": {error}" if error else "")
        self.publish()

    def _alive(self, pid: int, started: float, run_id: int) -> bool:
        if (pid, started) == self.ident:
            return (str(self.state.path), run_id) in _LIVE
        try:
            proc = psutil.Process(pid)
            return abs(proc.create_time() - started) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def _interrupt(self, db, run_id: int) -> None:
        db.execute("UPDATE action_runs SET outcome = 'interrupted', finished_at = ?, "
                   "error = 'the process running it ended before it finished' WHERE id = ?",
                   (self.deps.clock(), run_id))
        db.execute("DELETE FROM action_locks WHERE run_id = ?", (run_id,))
        log.warning("action run %d was interrupted (its process is gone); lock released", run_id)

    def recover(self) -> int:
        """Mark runs whose process is gone `interrupted` and release their locks; returns how many."""
        with self.state.tx() as db:
            rows = db.execute("SELECT id, pid, pid_started FROM action_runs WHERE outcome = 'running'").fetchall()
            dead = [r["id"] for r in rows if not self._alive(r["pid"], r["pid_started"], r["id"])]
            for run_id in dead:
                self._interrupt(db, run_id)
        self.publish()
        return len(dead)

    # -- reading ----------------------------------------------------------------------------------

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        """The audit record of one run, with live progress while it runs; None if unknown."""
        return get_run(self.state, run_id, self.live)

    def runs(self, action: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs first, optionally of one action."""
        return list_runs(self.state, action, limit, self.live)

    def publish(self) -> None:
        """Write the caretaker_action_* series to the store (and refresh the exposition)."""
        q = self.state.query
        samples = [sample("caretaker_action_runs_total", r["n"], action=r["action"], outcome=r["outcome"])
                   for r in q("SELECT action, outcome, count(*) AS n FROM action_runs "
                              "WHERE dry_run = 0 AND outcome <> 'running' GROUP BY action, outcome")]
        samples += [sample("caretaker_action_last_run_timestamp_seconds", r["t"], action=r["action"])
                    for r in q("SELECT action, max(finished_at) AS t FROM action_runs "
                               "WHERE dry_run = 0 AND finished_at IS NOT NULL GROUP BY action")]
        running = {r["action"]: r["n"] for r in q("SELECT action, count(*) AS n FROM action_locks GROUP BY action")}
        samples += [sample("caretaker_action_running", running.get(name, 0), action=name) for name in ACTIONS]
        for action in ACTIONS.values():
            samples += action.samples(self.state)
        self.deps.store.replace(SOURCE, samples)
        exporter = getattr(self.deps, "exporter", None)
        if exporter is not None:
            exporter.refresh()


def get_run(state, run_id: int, live: dict[int, LiveRun] | None = None) -> dict[str, Any] | None:
    """The audit record of one run from the state file (with live progress if in `live`); None if unknown."""
    rows = state.query("SELECT * FROM action_runs WHERE id = ?", (run_id,))
    return _record(rows[0], (live or {}).get(run_id)) if rows else None


def list_runs(state, action: str | None = None, limit: int = 50,
              live: dict[int, LiveRun] | None = None) -> list[dict[str, Any]]:
    """Audit records from the state file, newest first, optionally of one action."""
    where, args = ("WHERE action = ?", (action,)) if action else ("", ())
    rows = state.query(f"SELECT * FROM action_runs {where} ORDER BY id DESC LIMIT ?", (*args, limit))
    return [_record(r, (live or {}).get(r["id"])) for r in rows]


def _record(row, live: LiveRun | None) -> dict[str, Any]:
    progress = live.progress.as_dict() if live is not None else {
        "done": row["progress_done"], "total": row["progress_total"], "phase": row["progress_phase"]}
    return {"run_id": row["id"], "action": row["action"], "target": row["target"], "trigger": row["trigger"],
            "who": row["who"], "params": json.loads(row["params"]), "dry_run": bool(row["dry_run"]),
            "alert": row["alert"], "started_at": row["started_at"], "finished_at": row["finished_at"],
            "outcome": row["outcome"], "result": json.loads(row["result"]) if row["result"] else None,
            "error": row["error"], "progress": progress}
