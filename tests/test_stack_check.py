"""`caretaker check` on the whole fixture stack (tests/stack.py) lists every fault the builders planted, and
nothing else (issue 3, "How it is shown"). `for` durations are ignored by check, so the slow rules show too.

The expected set is built from the manifests of tests/fixtures; each fault's value is checked where the
manifest states it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

# The stuck runs tests/fixtures/aphrodite.py plants (_processing_rows: "stuck-1" poster, "stuck-2" badge);
# the manifest gives only their count, which is checked against this.
APHRODITE_STUCK_JOB_TYPES = {"poster", "badge"}


def aphrodite_kind(row_id: int) -> str:
    """media_items row g is a Series when g % 5 == 0, else a Movie (tests/fixtures/aphrodite.py MEDIA)."""
    return "series" if row_id % 5 == 0 else "movie"


def key(alert: str, **labels: str) -> tuple[str, tuple]:
    return alert, tuple(sorted(labels.items()))


def expected_faults(stack, started: float, finished: float) -> dict[tuple[str, tuple], tuple[float, float]]:
    """{(alert, labels): (lowest, highest) value} for every planted fault; `started`/`finished` bound the
    check's own clock (epoch seconds) for the values that grow with time."""
    ap, aph, ts = stack.aperture_manifest, stack.aphrodite_manifest, stack.tsundoku_manifest
    exactly = lambda v: (v, v)  # noqa: E731
    faults = {}
    # Aperture: 12 failed runs in 24 h (of job_runs_last_24h finished), overdue sync-series, the INVALID
    # unique index, posters missing/stale/without an image on Jellyfin, legacy embedding relations.
    faults[key("FailedJobsHigh", app="aperture")] = exactly(ap["failed_last_24h"])
    faults[key("JobErrorRateHigh", app="aperture")] = exactly(ap["failed_last_24h"] / ap["job_runs_last_24h"])
    for job in ap["overdue_jobs"]:
        faults[key("JobOverdue", app="aperture", job_name=job)] = (1.0, float("inf"))
    faults[key("PostgresInvalidIndex", database="aperture")] = exactly(len(ap["invalid_indexes"]))
    movies = (len(ap["missing_poster_movie_ids"]) + len(ap["stale_poster_movie_ids"])
              + len(ap["jellyfin_missing_image_movie_ids"]))
    series = len(ap["stale_poster_series_ids"]) + len(ap["jellyfin_missing_image_series_ids"])
    faults[key("PostersMissing", app="aperture", kind="movie")] = exactly(movies)
    faults[key("PostersMissing", app="aperture", kind="series")] = exactly(series)
    active = ap["active_embedding_dimension"]
    legacy = [t for t, rows in ap["embeddings"].items()
              if rows and (t.endswith("_legacy") or int(t.rsplit("_", 1)[1]) != active)]
    faults[key("LegacyEmbeddingsPresent", app="aperture")] = exactly(len(legacy))
    # Aphrodite: failed processing jobs (plus at most each schedule's one failed execution), overdue
    # badge-sync, two stuck processing runs, the batch queue's oldest item 20 min old, posters without URL.
    failed = aph["processing_jobs"]["failed"]
    schedule_failures = sum(s["failed"] for s in aph["schedules"].values())
    faults[key("FailedJobsHigh", app="aphrodite")] = (failed, failed + schedule_failures)
    faults[key("JobErrorRateHigh", app="aphrodite")] = (0.05, 1.0)
    for job in aph["overdue_schedules"]:
        faults[key("JobOverdue", app="aphrodite", job_name=job)] = (1.0, float("inf"))
    for job in APHRODITE_STUCK_JOB_TYPES:
        faults[key("JobStuck", app="aphrodite", job_name=job)] = exactly(1)
    oldest = aph["batch_jobs"]["oldest_queued_at"].timestamp()
    faults[key("QueueTimeHigh", app="aphrodite", queue="batch_jobs")] = (started - oldest - 1, finished - oldest + 1)
    kinds = [aphrodite_kind(g) for g in aph["missing_poster_media_ids"]]
    for kind in set(kinds):
        faults[key("PostersMissing", app="aphrodite", kind=kind)] = exactly(kinds.count(kind))
    # Tsundoku: runs left `running` by a crash (one series per job).
    if ts["stuck_run_ids"]:
        faults[key("JobStuck", app="tsundoku", job_name="series-refresh")] = exactly(1)
    return faults


@pytest.fixture(scope="module")
def checked(fixture_stack, tmp_path_factory):
    """(exit code, the --json report, stdout + stderr, started, finished) of one `caretaker check`."""
    work = tmp_path_factory.mktemp("check")
    config = fixture_stack.write_config(work / "caretaker.yaml", work / "data")
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "agent.cli", "check", "--integrity", "--json", "--config",
                             str(config)], cwd=work, capture_output=True, text=True, timeout=120, env=os.environ)
    finished = time.time()
    assert result.stdout.startswith("{"), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout), result.stdout + result.stderr, started, finished


def test_check_lists_every_planted_fault_and_nothing_else(fixture_stack, checked):
    code, report, _, started, finished = checked
    assert len(APHRODITE_STUCK_JOB_TYPES) == fixture_stack.aphrodite_manifest["processing_jobs"]["processing_stuck"]
    expected = expected_faults(fixture_stack, started, finished)
    found = {key(f["alert"], **f["labels"]): f["value"] for f in report["faults"]}
    assert len(found) == len(report["faults"]), "a fault listed twice"
    assert sorted(found) == sorted(expected)
    for k, (low, high) in expected.items():
        assert low - 1e-9 <= found[k] <= high + 1e-9, (k, found[k], (low, high))
    assert code == 1 and report["healthy"] is False


def test_every_probe_of_the_stack_succeeds(checked):
    """A failing probe is a fault nobody planted: every part of the stack is reachable and readable."""
    _, report, _, _, _ = checked
    failing = [(p["probe"], p["target"], p["reason"]) for p in report["probes"] if not p["ok"]]
    assert failing == []
    kinds = {p["probe"] for p in report["probes"]}
    assert kinds >= {"system", "postgres", "postgres_integrity", "service", "tls", "jobs", "queues", "embeddings",
                     "posters", "jellyfin_tasks", "push_jobs", "sqlite", "backups", "logs"}
    assert report["integrity_findings"] == []  # amcheck ran (--integrity) and the invalid index is skipped


def test_stuck_runs_are_the_planted_ones_not_the_healthy_ones(fixture_stack, checked):
    """One JobStuck per job, so the counts of stuck runs are in the jobs probes' summaries: Aphrodite's two
    crashed processing runs of its four running (one healthy processing run, one processing batch),
    Tsundoku's three crashed refresh runs of its four `running` rows (one started a minute ago)."""
    _, report, _, _, _ = checked
    summary = {p["target"]: p["summary"] for p in report["probes"] if p["probe"] == "jobs"}
    aph, ts = fixture_stack.aphrodite_manifest, fixture_stack.tsundoku_manifest
    running = (aph["processing_jobs"]["processing_stuck"] + aph["processing_jobs"]["processing_healthy"]
               + aph["batch_jobs"]["processing"])
    assert f"{aph['processing_jobs']['processing_stuck']} of {running} running stuck" in summary["aphrodite"]
    assert f"{len(ts['stuck_run_ids'])} of {ts['runs_by_status']['running']} running stuck" in summary["tsundoku"]
    assert "0 of 0 running stuck" in summary["aperture"]  # Aperture's API reports no active job


def test_check_output_names_no_secret(fixture_stack, checked):
    _, _, output, _, _ = checked
    assert [s for s in fixture_stack.secrets if s in output] == []


def test_faults_table_for_people_lists_the_same_faults(fixture_stack, checked, tmp_path):
    """The human table shows the same alerts; rich wraps cells, so only whole alert names are compared."""
    _, report, _, _, _ = checked
    config = fixture_stack.write_config(tmp_path / "caretaker.yaml", tmp_path / "data")
    result = subprocess.run([sys.executable, "-m", "agent.cli", "check", "--config", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 1
    faults_table = result.stdout.split("Faults", 1)[1]
    rows = [line.split("│")[1].strip() for line in faults_table.splitlines() if line.startswith("│")]
    assert sorted(rows) == sorted(f["alert"] for f in report["faults"])
