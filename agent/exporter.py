"""Prometheus exposition of the store: rendered once per store change, served as cached bytes.

A scrape never touches a database or the network (DESIGN.md §2): `body()` returns the bytes rendered
by the last `refresh()`, which the runtime calls after each probe round.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.metrics import spec
from agent.store import Store

CONTENT_TYPE = CONTENT_TYPE_LATEST


class StoreCollector(Collector):
    """A prometheus_client Collector building fresh families from the store on every collect()."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self):
        grouped = defaultdict(list)
        for s in self.store.samples():
            grouped[s.name].append(s)
        for name in sorted(grouped):
            meta = spec(name)
            if meta.type == "counter":
                family = CounterMetricFamily(name, meta.help, labels=meta.labels)
            else:
                family = GaugeMetricFamily(name, meta.help, labels=meta.labels)
            for s in sorted(grouped[name], key=lambda x: x.labels):
                family.add_metric([s.label(k) for k in meta.labels], s.value)
            yield family


class Exporter:
    """Holds the rendered exposition; thread-safe refresh, lock-free read of the cached bytes."""

    def __init__(self, store: Store):
        self.store = store
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StoreCollector(store))
        self._lock = threading.Lock()
        self._version = -1
        self._body = b""

    def refresh(self) -> None:
        with self._lock:
            if self.store.version != self._version:
                version = self.store.version
                self._body = generate_latest(self.registry)
                self._version = version

    def body(self) -> bytes:
        return self._body
