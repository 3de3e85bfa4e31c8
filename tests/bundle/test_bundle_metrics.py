"""The series catalogue (agent/metrics.py) against what Prometheus does to scraped series."""

from __future__ import annotations

from agent.metrics import METRICS

# Prometheus sets these on every scraped series itself (the spec, so typed here on purpose); an exported
# label of the same name is renamed `exported_<name>` unless the scrape sets honor_labels, so templates
# and dashboards reading it would see the scrape job instead (Prometheus docs, "Writing exporters":
# target labels such as job and instance must not be exported).
TARGET_LABELS = {"job", "instance"}


def test_no_series_declares_a_target_label():
    clashes = {name: sorted(TARGET_LABELS & set(spec.labels)) for name, spec in METRICS.items()
               if TARGET_LABELS & set(spec.labels)}
    assert not clashes, f"rename these labels in agent/metrics.py: {clashes}"


def test_no_label_name_is_reserved():
    reserved = {name: spec.labels for name, spec in METRICS.items() if any(x.startswith("__") for x in spec.labels)}
    assert not reserved, f"label names starting with __ are Prometheus' own: {reserved}"
