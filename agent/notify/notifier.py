"""The notifier: a durable outbox in the state file, delivered through Apprise (DESIGN.md §2, §7, §10).

Write side (`enqueue`, called by the rule engine inside the transaction that changes the alert state):
each firing/resolved transition becomes one outbox row per destination that routes its severity
(NotificationsFailing goes to every destination). An alert that changed state more than
`flap_changes` times within `flap_window` is *flapping*: one "flapping" row is written instead and its
further transitions are held until it settles (at most half as many changes in the window), when one
row with its state at that moment is written.

Delivery side (`serve`, a Runtime service), per destination, independently:
- Rows are classified at every pass: a firing/repeat/flapping row whose alert is silenced (a silence or a
  maintenance window) or muted (agent/notify/inhibit.py) is *held*; a resolution is never held, but when
  its firing row is still held (the user never heard of it) both are dropped as `muted`.
- Grouping without delay: the first pending rows go out at once; after a message, the rows that arrive
  within `group_window` wait for its end and go out together as one digest.
- Failures back off exponentially with jitter (`retry_initial` doubling up to `retry_max`, ×0.5–1.0);
  a row undeliverable for `expiry` since it became deliverable is marked `expired`, counted and logged.
- Rows are marked sent after Apprise reports success, so a crash in between re-sends at most once.
- A firing alert whose last firing/repeat message on a destination is `repeat_interval` old gets a
  `repeat` row.
Apprise is blocking: each call runs in a daemon thread under `send_timeout`, so a hanging service never
blocks the loop or the agent's exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any, Callable

from agent.config import NotifyConfig
from agent.durations import format_duration
from agent.notify.inhibit import Inhibition, muted_by
from agent.notify.message import Entry, compose, payload, transition_payload
from agent.notify.silences import Matcher, MaintenanceWindows, list_silences, matches_all
from agent.rules.engine import AlertState, RuleEngine, Transition, alert_id, labels_from_json, labels_json
from agent.rules.model import Rule
from agent.samples import sample
from agent.state import State
from agent.store import Store

log = logging.getLogger("caretaker.notify")

HOLDABLE = ("firing", "repeat", "flapping")
EVERY_ROUTE = frozenset({"NotificationsFailing"})  # "logged, and tried on every channel" (DESIGN.md §7)
RETENTION = 7 * 86400.0  # delivered/expired rows, notes and ended silences are kept this long for the record
PRUNE_EVERY = 3600.0


async def call_blocking(fn: Callable[..., bool], timeout: float, *args: Any) -> bool:
    """Run a blocking `fn(*args)` in a daemon thread; False on exception or after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()

    def work() -> None:
        try:
            ok = bool(fn(*args))
        except Exception:
            log.debug("notification call raised", exc_info=True)
            ok = False

        def finish() -> None:
            if not future.done():
                future.set_result(ok)

        try:
            loop.call_soon_threadsafe(finish)
        except RuntimeError:
            pass  # the loop has closed: the agent stopped while this call was running

    threading.Thread(target=work, name="apprise-send", daemon=True).start()
    try:
        return await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        return False


@dataclass
class _Route:
    """Delivery state of one destination (in memory: after a restart the first message goes at once)."""

    last_sent: float | None = None
    failures: int = 0
    next_attempt: float = 0.0


class Notifier:
    """See the module docstring. `destinations` are agent.notify.routes.Destination (or anything with
    id, label, tags, routes(severity) and a blocking send(title, body, notify_type) -> bool)."""

    def __init__(self, cfg: NotifyConfig, state: State, store: Store, clock: Callable[[], float], host: str,
                 destinations: list, engine: RuleEngine, inhibition: list[Inhibition],
                 on_metrics: Callable[[], None] = lambda: None, rng: Callable[[], float] = random.random,
                 tick_interval: float = 0.5):
        self.cfg = cfg
        self.state = state
        self.store = store
        self.clock = clock
        self.host = host
        self.destinations = destinations
        self.engine = engine
        self.inhibition = inhibition
        self.windows = MaintenanceWindows(cfg.maintenance_windows)
        self.on_metrics = on_metrics
        self.rng = rng
        self.tick_interval = tick_interval
        self.sent_total = 0
        self.failed_total = 0
        self.expired_total = 0
        self._routes = {d.id: _Route() for d in destinations}
        self._inflight: dict[str, asyncio.Task] = {}
        self._wake = asyncio.Event()
        self._pruned_at = float("-inf")
        self._exported: tuple = ()
        self._export(clock())

    # -- write side ------------------------------------------------------------------------------------
    def _insert(self, db: sqlite3.Connection, rule: Rule, labels: dict[str, str], kind: str,
                fired_at: float | None, data: dict, now: float) -> int:
        rows = 0
        for dest in self.destinations:
            if rule.name in EVERY_ROUTE or dest.routes(data["severity"]):
                db.execute("INSERT INTO outbox (created_at, dest, rule, labels, fired_at, kind, payload, ready_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (now, dest.id, rule.name, labels_json(tuple(sorted(labels.items()))), fired_at, kind,
                            json.dumps(data), now))
                rows += 1
        self._poke()
        return rows

    def _poke(self) -> None:
        """Wake the delivery loop now; from another thread (or no loop) the next tick finds the rows."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wake.set()

    def enqueue(self, db: sqlite3.Connection, transitions: list[Transition], now: float) -> None:
        """The rule engine's sink: runs inside its transaction."""
        for t in transitions:
            if t.kind not in ("firing", "resolved"):
                continue
            key = (t.rule.name, labels_json(t.labels))
            db.execute("INSERT INTO alert_transitions VALUES (?, ?, ?, ?)", (*key, t.kind, now))
            if db.execute("SELECT 1 FROM alert_flapping WHERE rule = ? AND labels = ?", key).fetchone():
                log.info("%s %s: notification held, the alert is flapping", alert_id(t.rule.name, t.labels),
                         t.kind)
                continue
            changes = db.execute("SELECT COUNT(*) FROM alert_transitions WHERE rule = ? AND labels = ? AND at > ?",
                                 (*key, now - self.cfg.flap_window)).fetchone()[0]
            if changes > self.cfg.flap_changes:
                db.execute("INSERT INTO alert_flapping VALUES (?, ?, ?)", (*key, now))
                log.warning("alert %s is flapping: %d state changes within %s; holding its notifications until "
                            "it settles", alert_id(t.rule.name, t.labels), changes,
                            format_duration(self.cfg.flap_window))
                self._insert(db, t.rule, dict(t.labels), "flapping", t.fired_at,
                             transition_payload(t, changes=changes, window=self.cfg.flap_window, state=t.kind), now)
                continue
            self._insert(db, t.rule, dict(t.labels), t.kind, t.fired_at, transition_payload(t), now)

    def add_note(self, rule_name: str, labels: dict[str, str], text: str, severity: str | None = None) -> None:
        """Attach `text` to the alert's next notification on every destination; when the alert is neither
        active nor waiting in the outbox, send the note on its own. With `severity`, send it on its own at
        once, routed as that severity (an escalation that must page). KeyError for an unknown rule."""
        rule = self.engine.by_name[rule_name]
        if severity is not None:
            rule = rule.model_copy(update={"severity": severity, "severity_by": {}})
        now = self.clock()
        key = (rule_name, labels_json(tuple(sorted(labels.items()))))
        with self.state.tx() as db:
            waiting = db.execute("SELECT 1 FROM outbox WHERE rule = ? AND labels = ? AND status = 'pending' "
                                 "LIMIT 1", key).fetchone()
            if severity is None and (waiting or (rule_name, labels_from_json(key[1])) in self.engine.states):
                db.execute("INSERT INTO alert_notes (rule, labels, text, created_at) VALUES (?, ?, ?, ?)",
                           (*key, text, now))
            else:
                self._insert(db, rule, labels, "note", None, payload(rule, labels, None, now, None, now, text=text),
                             now)

    # -- periodic work ---------------------------------------------------------------------------------
    def _maintain(self, now: float) -> None:
        prune = now - self._pruned_at >= PRUNE_EVERY
        # Most ticks have nothing to write: look first (read-only), open a write transaction only when needed;
        # inside it the work is decided again, so a concurrent writer cannot make it act on a stale look.
        if not (prune or self._settles(now) or self._due_repeats(self.state.query, now)):
            return
        with self.state.tx() as db:
            self._settle_flapping(db, now)
            self._repeat(db, now)
            if prune:
                self._prune(db, now)
                self._pruned_at = now

    def _settles(self, now: float) -> bool:
        """Whether a flapping alert has settled (what `_settle_flapping` acts on)."""
        return bool(self.state.query(
            "SELECT 1 FROM alert_flapping f WHERE (SELECT COUNT(*) FROM alert_transitions t WHERE t.rule = f.rule "
            "AND t.labels = f.labels AND t.at > ?) <= ? LIMIT 1",
            (now - self.cfg.flap_window, self.cfg.flap_changes // 2)))

    def _settle_flapping(self, db: sqlite3.Connection, now: float) -> None:
        for row in db.execute("SELECT rule, labels FROM alert_flapping").fetchall():
            key = (row["rule"], row["labels"])
            changes = db.execute("SELECT COUNT(*) FROM alert_transitions WHERE rule = ? AND labels = ? AND at > ?",
                                 (*key, now - self.cfg.flap_window)).fetchone()[0]
            if changes > self.cfg.flap_changes // 2:
                continue
            db.execute("DELETE FROM alert_flapping WHERE rule = ? AND labels = ?", key)
            rule = self.engine.by_name.get(row["rule"])
            if rule is None:
                continue
            labels = labels_from_json(row["labels"])
            current = self.engine.states.get((rule.name, labels))
            log.info("alert %s stopped flapping (%d changes within %s)", alert_id(rule.name, labels), changes,
                     format_duration(self.cfg.flap_window))
            if current is not None and current.state == "firing":
                self._insert(db, rule, dict(labels), "firing", current.fired_at,
                             payload(rule, dict(labels), current.value, current.active_since, current.fired_at, now,
                                     settled=True), now)
            else:
                self._insert(db, rule, dict(labels), "resolved", None,
                             payload(rule, dict(labels), None, now, None, now, settled=True), now)

    def _due_repeats(self, read: Callable[[str, tuple], list[sqlite3.Row]],
                     now: float) -> list[tuple[AlertState, Rule, Any]]:
        """The repeat rows due now, as (alert, rule, destination), in order: a firing alert that is not flapping,
        on a destination that routes it, with no pending row there, whose last firing/repeat/flapping message
        of this episode there (or its firing) is `repeat_interval` old. `read(sql, params)` returns the rows."""
        firing = self.engine.firing()
        if not firing:
            return []
        flapping = {(r["rule"], r["labels"]) for r in read("SELECT rule, labels FROM alert_flapping", ())}
        alerts = [(s, (s.rule, labels_json(s.labels))) for s in firing]
        alerts = [(s, key) for s, key in alerts if key not in flapping]
        pending: set[tuple[str, str, str]] = set()
        last_sent: dict[tuple[str, str, str], float] = {}
        for i in range(0, len(alerts), 250):  # 3 parameters per alert: well under SQLite's 999
            chunk = alerts[i:i + 250]
            rows = read(
                "WITH firing (rule, labels, fired_at) AS (VALUES " + ", ".join(["(?, ?, ?)"] * len(chunk)) + ") "
                "SELECT o.rule, o.labels, o.dest, MAX(o.status = 'pending') AS pending, "
                "MAX(CASE WHEN o.status = 'sent' AND o.kind IN ('firing', 'repeat', 'flapping') "
                "AND o.fired_at = f.fired_at THEN o.sent_at END) AS last "
                "FROM firing f JOIN outbox o ON o.rule = f.rule AND o.labels = f.labels "
                "GROUP BY o.rule, o.labels, o.dest",
                tuple(v for s, key in chunk for v in (*key, s.fired_at)))
            for r in rows:
                dest_key = (r["rule"], r["labels"], r["dest"])
                if r["pending"]:
                    pending.add(dest_key)
                if r["last"] is not None:
                    last_sent[dest_key] = r["last"]
        due = []
        for s, key in alerts:
            rule = self.engine.by_name[s.rule]
            severity = rule.severity_for(dict(s.labels))
            for dest in self.destinations:
                if not (rule.name in EVERY_ROUTE or dest.routes(severity)) or (*key, dest.id) in pending:
                    continue
                if now - (last_sent.get((*key, dest.id)) or s.fired_at or now) >= self.cfg.repeat_interval:
                    due.append((s, rule, dest))
        return due

    def _repeat(self, db: sqlite3.Connection, now: float) -> None:
        for s, rule, dest in self._due_repeats(lambda sql, params: db.execute(sql, params).fetchall(), now):
            data = payload(rule, dict(s.labels), s.value, s.active_since, s.fired_at, now)
            db.execute("INSERT INTO outbox (created_at, dest, rule, labels, fired_at, kind, payload, ready_at) "
                       "VALUES (?, ?, ?, ?, ?, 'repeat', ?, ?)",
                       (now, dest.id, s.rule, labels_json(s.labels), s.fired_at, json.dumps(data), now))
            self._poke()

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        keep = now - max(RETENTION, 2 * self.cfg.repeat_interval)
        db.execute("DELETE FROM outbox WHERE status != 'pending' AND created_at < ?", (keep,))
        db.execute("DELETE FROM alert_transitions WHERE at <= ?", (now - self.cfg.flap_window,))
        db.execute("DELETE FROM alert_notes WHERE created_at < ?", (keep,))
        db.execute("DELETE FROM silences WHERE ends_at < ?", (keep,))

    # -- delivery --------------------------------------------------------------------------------------
    def holds(self, now: float) -> list[tuple[str, tuple[Matcher, ...]]]:
        """Silences and maintenance windows in force: (who holds, matchers)."""
        out = [(f"silenced by {s.id}" + (f" ({s.reason})" if s.reason else ""), s.matchers)
               for s in list_silences(self.state, now) if s.active(now)]
        out += [(f"silenced by maintenance window {name}", m) for name, m, _ in self.windows.active(now)]
        return out

    def hold_reason(self, rule: str, labels: dict[str, str], holds: list, firing: list) -> str | None:
        for who, matchers in holds:
            if matches_all(matchers, rule, labels):
                return who
        source = muted_by(self.inhibition, rule, labels, firing)
        return None if source is None else f"muted by {source}"

    def _classify(self, rows: list[sqlite3.Row], now: float,
                  in_force: Callable[[float], tuple[list, list]]) -> tuple[list, dict[int, str], list[int]]:
        """(deliverable rows, {held row id: reason}, muted row ids). `in_force(now)` gives the holds and the
        firing alerts (computed once per tick, see `tick`)."""
        holds, firing = in_force(now)
        ready, held, muted = [], {}, []
        resolved = {(r["rule"], r["labels"], r["fired_at"]) for r in rows if r["kind"] == "resolved"}
        unannounced = set()  # episodes whose firing was held and that resolved meanwhile
        for r in rows:
            episode = (r["rule"], r["labels"], r["fired_at"])
            if r["kind"] in HOLDABLE:
                reason = self.hold_reason(r["rule"], json.loads(r["labels"]), holds, firing)
                # Held at the last pass counts too: its source may have resolved in the same round.
                if episode in resolved and (reason is not None or r["held_by"] is not None):
                    muted.append(r["id"])
                    if r["kind"] != "repeat":  # a repeat was preceded by a firing message: resolve that
                        unannounced.add(episode)
                    continue
                if reason is not None:
                    held[r["id"]] = reason
                    continue
            elif r["kind"] == "resolved" and episode in unannounced:
                muted.append(r["id"])
                continue
            ready.append(r)
        return ready, held, muted

    def _pending(self, dest_id: str) -> list[sqlite3.Row]:
        return self.state.query("SELECT * FROM outbox WHERE dest = ? AND status = 'pending' ORDER BY id", (dest_id,))

    def _entries(self, dest_id: str, rows: list[sqlite3.Row]) -> tuple[list[Entry], list[int]]:
        """Entries for `rows`, with unsent notes attached to each alert's last row; and the note ids."""
        notes: dict[tuple, list[sqlite3.Row]] = {}
        last_row: dict[tuple, int] = {}
        for r in rows:
            key = (r["rule"], r["labels"])
            last_row[key] = r["id"]
            if key not in notes:
                notes[key] = self.state.query(
                    "SELECT id, text FROM alert_notes n WHERE rule = ? AND labels = ? AND NOT EXISTS "
                    "(SELECT 1 FROM alert_note_sent s WHERE s.note_id = n.id AND s.dest = ?) ORDER BY id",
                    (*key, dest_id))
        entries = []
        for r in rows:
            key = (r["rule"], r["labels"])
            attached = tuple(n["text"] for n in notes[key]) if last_row[key] == r["id"] else ()
            entries.append(Entry(r["kind"], r["rule"], json.loads(r["labels"]), json.loads(r["payload"]),
                                 json.loads(r["was_held"]) if r["was_held"] else None, attached,
                                 self._muting(dest_id, r)))
        return entries, [n["id"] for ns in notes.values() for n in ns]

    def _muting(self, dest_id: str, r: sqlite3.Row) -> tuple[str, ...]:
        """Alerts this row's alert muted on this destination during its episode."""
        if not any(r["rule"] == inh.source for inh in self.inhibition) or r["fired_at"] is None:
            return ()
        source = alert_id(r["rule"], labels_from_json(r["labels"]))
        rows = self.state.query(
            "SELECT DISTINCT rule, labels FROM outbox WHERE dest = ? AND created_at >= ? AND "
            "COALESCE(held_by, json_extract(was_held, '$.by')) = ? ORDER BY id", (dest_id, r["fired_at"],
                                                                                 f"muted by {source}"))
        return tuple(alert_id(m["rule"], labels_from_json(m["labels"])) for m in rows)

    def _in_force(self) -> Callable[[float], tuple[list, list]]:
        """`now` → (silences and maintenance windows in force, firing alerts), computed at the first call
        only: one tick's delivery passes share it instead of each destination querying the silences."""
        memo: list[tuple[list, list]] = []

        def in_force(now: float) -> tuple[list, list]:
            if not memo:
                memo.append((self.holds(now), self.engine.firing()))
            return memo[0]
        return in_force

    async def _deliver(self, dest: Any, in_force: Callable[[float], tuple[list, list]] | None = None) -> None:
        now = self.clock()
        route = self._routes[dest.id]
        rows = self._pending(dest.id)
        if not rows:
            return
        ready, held, muted = self._classify(rows, now, in_force or self._in_force())
        expired = {r["id"] for r in ready if r["ready_at"] is not None and now - r["ready_at"] >= self.cfg.expiry}
        previous = {r["id"]: r["held_by"] for r in rows}
        newly_held = {i: why for i, why in held.items() if previous[i] != why}
        released = [r["id"] for r in ready if r["held_by"] is not None]
        if newly_held or released or muted or expired:
            with self.state.tx() as db:
                for row_id, reason in newly_held.items():
                    db.execute("UPDATE outbox SET held_by = ?, ready_at = NULL, was_held = COALESCE(was_held, ?) "
                               "WHERE id = ?", (reason, json.dumps({"by": reason, "since": now}), row_id))
                db.executemany("UPDATE outbox SET held_by = NULL, ready_at = ? WHERE id = ?",
                               [(now, i) for i in released])
                db.executemany("UPDATE outbox SET status = 'muted' WHERE id = ?", [(i,) for i in muted])
                db.executemany("UPDATE outbox SET status = 'expired' WHERE id = ?", [(i,) for i in expired])
        for r in (r for r in rows if r["id"] in muted and r["kind"] == "resolved"):
            log.info("%s resolved while its notification was held: nothing sent to %s",
                     alert_id(r["rule"], labels_from_json(r["labels"])), dest.label)
        for r in (r for r in ready if r["id"] in expired):
            log.error("notification %s %s to %s expired: undeliverable for %s", r["kind"],
                      alert_id(r["rule"], labels_from_json(r["labels"])), dest.label,
                      format_duration(now - r["ready_at"]))
        self.expired_total += len(expired)
        ready = [r for r in ready if r["id"] not in expired]
        due = max(route.next_attempt, route.last_sent + self.cfg.group_window if route.last_sent is not None else 0.0)
        if not ready or now < due:
            return
        # Rows released from a hold just now carry their hold in was_held, written above.
        ready = [row for row in self.state.query(
            f"SELECT * FROM outbox WHERE id IN ({','.join('?' * len(ready))}) ORDER BY id", [r["id"] for r in ready])]
        entries, note_ids = self._entries(dest.id, ready)
        message = compose(entries, self.host, now)
        ok = await call_blocking(dest.send, self.cfg.send_timeout, message.title, message.body, message.notify_type)
        done = self.clock()
        ids = [(r["id"],) for r in ready]
        with self.state.tx() as db:
            db.executemany("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", ids)
            if ok:
                db.executemany("UPDATE outbox SET status = 'sent', sent_at = ? WHERE id = ?",
                               [(done, i) for (i,) in ids])
                db.executemany("INSERT OR IGNORE INTO alert_note_sent VALUES (?, ?)", [(n, dest.id) for n in note_ids])
        if ok:
            route.last_sent, route.failures, route.next_attempt = done, 0, 0.0
            self.sent_total += 1
            log.info("sent %r (%d notification(s)) to %s", message.title, len(ready), dest.label)
        else:
            route.failures += 1
            delay = min(self.cfg.retry_max, self.cfg.retry_initial * 2 ** (route.failures - 1)) * (0.5 + self.rng() / 2)
            route.next_attempt = done + delay
            self.failed_total += 1
            log.warning("delivery of %r to %s failed (attempt %d); retrying in %.1fs", message.title, dest.label,
                        route.failures, delay)

    # -- loop ------------------------------------------------------------------------------------------
    def _export(self, now: float) -> None:
        row = self.state.query("SELECT COUNT(*) AS n, MIN(ready_at) AS oldest FROM outbox "
                               "WHERE status = 'pending' AND held_by IS NULL")[0]
        oldest = 0.0 if row["oldest"] is None else float(max(0, round(now - row["oldest"])))
        values = (self.sent_total, self.failed_total, self.expired_total, row["n"], oldest)
        if values == self._exported:
            return  # unchanged: spare the exporter a re-render
        self._exported = values
        self.store.replace(("agent", "notifier"), [
            sample(name, value) for name, value in zip(
                ("caretaker_notifications_sent_total", "caretaker_notifications_failed_total",
                 "caretaker_notifications_expired_total", "caretaker_notification_outbox_pending",
                 "caretaker_notification_outbox_oldest_seconds"), values)])
        self.on_metrics()

    def _done(self, dest_id: str, task: asyncio.Task) -> None:
        self._inflight.pop(dest_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("notification delivery failed unexpectedly", exc_info=task.exception())

    def tick(self) -> None:
        """Periodic work, then start a delivery pass on every destination that has none running."""
        now = self.clock()
        self._maintain(now)
        in_force = self._in_force()  # the holds, once for every destination of this tick
        for dest in self.destinations:
            if dest.id not in self._inflight:
                task = asyncio.create_task(self._deliver(dest, in_force), name=f"notify:{dest.id}")
                self._inflight[dest.id] = task
                task.add_done_callback(lambda t, d=dest.id: self._done(d, t))
        self._export(now)

    async def run_once(self) -> None:
        """One tick and wait for its deliveries (tests, and the last pass before shutdown)."""
        self.tick()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        self._export(self.clock())

    async def serve(self, stop: asyncio.Event) -> None:
        """The Runtime service: tick every `tick_interval`, at once when a row is written."""
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    self.tick()
                except Exception:
                    log.exception("notifier tick failed")
                try:
                    await asyncio.wait_for(self._wake.wait(), self.tick_interval)
                except asyncio.TimeoutError:
                    pass
        finally:
            for task in list(self._inflight.values()):
                task.cancel()
