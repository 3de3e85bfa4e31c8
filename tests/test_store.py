"""The store's per-name index: rebuilt after every change, in source order, never shared with callers."""

from __future__ import annotations

from agent.samples import sample
from agent.store import Store


def test_series_follows_every_replace_in_source_order_and_returns_a_new_list():
    store = Store()
    assert store.series("caretaker_up") == []
    store.replace(("a", "x"), [sample("caretaker_up", 1, target="x"), sample("caretaker_other", 2)])
    store.replace(("b", "y"), [sample("caretaker_up", 0, target="y")])
    assert [s.label("target") for s in store.series("caretaker_up")] == ["x", "y"]
    got = store.series("caretaker_up")
    got.clear()  # the caller's list: the store is unaffected
    assert len(store.series("caretaker_up")) == 2
    store.replace(("a", "x"), [sample("caretaker_other", 3)])
    assert [s.label("target") for s in store.series("caretaker_up")] == ["y"]
    assert [s.value for s in store.series("caretaker_other")] == [3.0]
