"""The rule engine's state machine at every boundary, with an injected clock (no sleeping)."""

from __future__ import annotations

import logging

import pytest

from agent.config import RuleOverride
from agent.rules.engine import AlertState, RuleEngine, default_evaluator, evaluate_all, step
from agent.rules.model import Match, load_rules
from agent.samples import sample
from agent.state import State
from agent.store import Store

DISK = {r.name: r for r in load_rules()}["DiskSpaceHigh"]  # > 0.80 for 5m, clears below 0.75
LABELS = (("mountpoint", "/"),)


def match(value: float, rule=DISK) -> Match:
    fires = value > rule.threshold
    return Match(LABELS, value, fires, value > (rule.clear if rule.clear is not None else rule.threshold))


def test_pending_until_for_then_firing_exactly_at_the_boundary():
    s, t = step(DISK, None, match(0.91), 1000.0)
    assert (s.state, t.kind, t.since) == ("pending", "pending", 1000.0)
    s, t = step(DISK, s, match(0.92), 1000.0 + 299.9)
    assert (s.state, t) == ("pending", None)
    s, t = step(DISK, s, match(0.93), 1000.0 + 300.0)
    assert (s.state, s.fired_at, t.kind, t.value, t.since) == ("firing", 1300.0, "firing", 0.93, 1000.0)


def test_pending_that_clears_before_for_goes_back_to_inactive_without_firing():
    s, _ = step(DISK, None, match(0.91), 0.0)
    # 0.78 is above the clear threshold, but hysteresis only keeps a *firing* alert.
    s, t = step(DISK, s, match(0.78), 299.0)
    assert s is None and t.kind == "inactive"


def test_zero_for_fires_on_the_first_evaluation():
    rule = DISK.model_copy(update={"for_": 0.0})
    s, t = step(rule, None, match(0.81, rule), 5.0)
    assert (s.state, t.kind, s.fired_at) == ("firing", "firing", 5.0)


def test_clear_threshold_keeps_firing_until_the_value_drops_to_it():
    s = AlertState("DiskSpaceHigh", LABELS, "firing", 0.0, 300.0, 0.9, fired_at=300.0)
    s, t = step(DISK, s, match(0.76), 400.0)  # below 0.80, above 0.75
    assert (s.state, t, s.value) == ("firing", None, 0.76)
    s, t = step(DISK, s, match(0.75), 500.0)  # 0.75 > 0.75 is false
    assert s is None and (t.kind, t.value, t.fired_at) == ("resolved", 0.75, 300.0)


def test_keep_firing_for_holds_the_alert_until_it_elapses():
    rule = DISK.model_copy(update={"keep_firing_for": 60.0})
    s = AlertState("DiskSpaceHigh", LABELS, "firing", 0.0, 100.0, 0.9, fired_at=0.0)
    s, t = step(rule, s, match(0.5, rule), 159.9)
    assert (s.state, t, s.last_true) == ("firing", None, 100.0)
    s, t = step(rule, s, match(0.5, rule), 160.0)
    assert s is None and t.kind == "resolved"


def test_a_series_that_disappears_resolves_only_when_the_store_is_complete():
    store = Store()
    firing = {("DiskSpaceHigh", LABELS): AlertState("DiskSpaceHigh", LABELS, "firing", 0.0, 0.0, 0.9, fired_at=0.0)}
    rules = [(DISK, default_evaluator(DISK))]
    new, transitions = evaluate_all(rules, firing, store, 10.0, complete=False)
    assert new == firing and transitions == []
    new, transitions = evaluate_all(rules, firing, store, 10.0, complete=True)
    assert new == {} and [(t.kind, t.value) for t in transitions] == [("resolved", None)]


# --- RuleEngine: persistence, transactions, logs, metrics ----------------------------------------------------


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def disk(store: Store, value: float, mountpoint: str = "/") -> None:
    store.replace(("system", "host"), [sample("caretaker_disk_usage_ratio", value, mountpoint=mountpoint)])


def engine_for(tmp_path, store, clock, complete=lambda: True, **overrides):
    rules = load_rules({k: RuleOverride(**v) for k, v in overrides.items()})
    return RuleEngine([(r, default_evaluator(r)) for r in rules], State(tmp_path / "state.db"), store, clock,
                      complete)


def test_restart_keeps_a_firing_alert_without_firing_it_again(tmp_path):
    store, clock = Store(), Clock()
    disk(store, 0.91)
    first = engine_for(tmp_path, store, clock)
    assert [t.kind for t in first.evaluate(clock())] == ["pending"]
    clock.t += 300
    assert [t.kind for t in first.evaluate(clock())] == ["firing"]
    first.state.close()

    second = engine_for(tmp_path, store, clock)
    assert second.states[("DiskSpaceHigh", LABELS)].state == "firing"
    clock.t += 15
    assert second.evaluate(clock()) == []
    assert store.series("caretaker_alerts_firing") and {
        s.label("severity"): s.value for s in store.series("caretaker_alerts_firing")} == {
        "critical": 0, "warning": 1, "info": 0}


def test_pending_survives_a_restart_and_fires_when_for_has_elapsed(tmp_path):
    store, clock = Store(), Clock()
    disk(store, 0.91)
    engine_for(tmp_path, store, clock).evaluate(clock())
    clock.t += 300
    again = engine_for(tmp_path, store, clock)
    assert [t.kind for t in again.evaluate(clock())] == ["firing"]


def test_an_alert_that_cleared_while_stopped_resolves_at_the_first_complete_evaluation(tmp_path):
    store, clock = Store(), Clock()
    disk(store, 0.91)
    engine_for(tmp_path, store, clock, DiskSpaceHigh={"for": "0s"}).evaluate(clock())
    complete = [False]
    restarted = engine_for(tmp_path, Store(), clock, lambda: complete[0], DiskSpaceHigh={"for": "0s"})
    clock.t += 60
    assert restarted.evaluate(clock()) == []  # no probe has run yet: nothing is known
    complete[0] = True
    assert [(t.kind, t.value) for t in restarted.evaluate(clock())] == [("resolved", None)]
    assert restarted.state.query("SELECT COUNT(*) AS n FROM alerts")[0]["n"] == 0


def test_sinks_run_in_the_state_transaction_and_a_failure_rolls_both_back(tmp_path):
    store, clock = Store(), Clock()
    disk(store, 0.91)
    engine = engine_for(tmp_path, store, clock, DiskSpaceHigh={"for": "0s"})

    def broken(db, transitions, now):
        db.execute("INSERT INTO kv VALUES ('x', 'y')")
        raise RuntimeError("outbox full")

    engine.sinks.append(broken)
    with pytest.raises(RuntimeError):
        engine.evaluate(clock())
    assert engine.states == {}
    assert engine.state.query("SELECT COUNT(*) AS n FROM alerts")[0]["n"] == 0
    assert engine.state.get("x") is None


def test_one_log_line_per_transition(tmp_path, caplog):
    store, clock = Store(), Clock()
    disk(store, 0.91)
    engine = engine_for(tmp_path, store, clock, DiskSpaceHigh={"for": "0s"})
    with caplog.at_level(logging.INFO, logger="caretaker.alerts"):
        engine.evaluate(clock())
        clock.t += 15
        engine.evaluate(clock())  # still firing: no line
        disk(store, 0.70)
        clock.t += 15
        engine.evaluate(clock())
    assert [r.getMessage() for r in caplog.records] == [
        'alert DiskSpaceHigh{mountpoint="/"} firing: value 91.0% > 80.0%',
        'alert DiskSpaceHigh{mountpoint="/"} resolved: value 70.0% (fires > 80.0%, holds while > 75.0%)',
    ]
