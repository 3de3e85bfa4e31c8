"""Exporter: exposition rendered once per store change, with TYPE/HELP from the catalogue."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from agent.exporter import Exporter
from agent.metrics import METRICS
from agent.samples import sample
from agent.store import Store


def test_renders_types_help_and_labels():
    store = Store()
    store.replace(("system", "h"), [sample("caretaker_disk_usage_ratio", 0.5, mountpoint="/"),
                                    sample("caretaker_network_receive_bytes_total", 10, device="eth0")])
    exporter = Exporter(store)
    exporter.refresh()
    families = {f.name: f for f in text_string_to_metric_families(exporter.body().decode())}
    disk = families["caretaker_disk_usage_ratio"]
    assert disk.type == "gauge" and disk.documentation == METRICS["caretaker_disk_usage_ratio"].help
    assert [(s.labels, s.value) for s in disk.samples] == [({"mountpoint": "/"}, 0.5)]
    net = families["caretaker_network_receive_bytes"]
    assert net.type == "counter"
    assert net.samples[0].name == "caretaker_network_receive_bytes_total" and net.samples[0].value == 10


def test_body_is_cached_until_the_store_changes():
    store = Store()
    exporter = Exporter(store)
    store.replace(("a", "b"), [sample("caretaker_memory_usage_ratio", 0.25)])
    exporter.refresh()
    first = exporter.body()
    exporter.refresh()
    assert exporter.body() is first  # nothing changed: no re-render
    store.replace(("a", "b"), [sample("caretaker_memory_usage_ratio", 0.75)])
    assert exporter.body() is first  # a scrape never renders
    exporter.refresh()
    assert b"caretaker_memory_usage_ratio 0.75" in exporter.body()


def test_replacing_a_source_drops_vanished_series():
    store = Store()
    store.replace(("postgres", "db"), [sample("caretaker_postgres_dead_tuples", 5, database="db", relation="t1"),
                                       sample("caretaker_postgres_dead_tuples", 7, database="db", relation="t2")])
    store.replace(("postgres", "db"), [sample("caretaker_postgres_dead_tuples", 5, database="db", relation="t1")])
    assert [s.label("relation") for s in store.series("caretaker_postgres_dead_tuples")] == ["t1"]
