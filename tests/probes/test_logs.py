"""Logs probe on files written at test time: levels in common formats, exact counts, rotation by rename and
by copytruncate, restart resume from the state file, the per-run byte cap and the error-ratio window."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from agent.config import ConfigError, parse_config
from agent.probes.logs import DEFAULT_LEVEL_REGEX, LEVELS, Classifier, LogsProbe
from agent.state import State

LINES = {  # one line of each common format → the level it must count as
    "2024-05-01 12:00:00,123 ERROR aperture.sync: TMDB answered 401": "error",
    "[2024-05-01 12:00:00.000 +00:00] [ERR] [14] Emby.Server: Error processing request": "error",
    "[2024-05-01 12:00:00.000 +00:00] [FTL] [1] Main: Unhandled exception": "error",
    '{"level":"error","time":"2024-05-01T12:00:00Z","msg":"job failed"}': "error",
    '{"level":50,"time":1714564800000,"msg":"pino error"}': "error",
    "time=2024-05-01T12:00:00Z level=warn msg=slow": "warning",
    "[2024-05-01 12:00:00.000 +00:00] [WRN] [7] Jellyfin.Api: slow request": "warning",
    "2024-05-01 12:00:00 WARNING sqlite busy": "warning",
    '{"level":"info","msg":"sync done"}': "info",
    "[2024-05-01 12:00:00.000 +00:00] [INF] [1] Main: Startup complete": "info",
    "2024-05-01T12:00:00Z INFO refresh-all triggered": "info",
    '{"level":20,"msg":"pino debug"}': "debug",
    "[2024-05-01 12:00:00.000 +00:00] [DBG] [3] Cache: hit": "debug",
    "   at Aperture.Sync.run (/app/dist/sync.js:10:5)": "other",
    "Traceback (most recent call last):": "other",
    "no level here, although an error happened": "other",
    "": "other",
}


def test_default_levels_of_common_formats():
    classifier = Classifier(re.compile(DEFAULT_LEVEL_REGEX))
    assert {line: classifier.level(line) for line in LINES} == LINES


def test_custom_regex_and_json_field():
    classifier = Classifier(re.compile(r"^<(\w)>"), json_field="severity")
    assert classifier.level("<E> boom") == "other"  # a word the level table does not know
    assert Classifier(re.compile(r"^(\w+):")).level("warn: disk") == "warning"
    assert classifier.level('{"severity":"CRITICAL","msg":"x"}') == "error"
    assert classifier.level('{"level":"error","msg":"x"}') == "other"  # not the configured field


class Harness:
    """A probe on `app.log` in `directory` with its own state file and a settable clock."""

    def __init__(self, directory: Path, **cfg):
        self.dir = directory
        self.log = directory / "app.log"
        self.now = 1_700_000_000.0
        self.cfg = {"app": "aperture", "paths": [str(directory / "*.log")], **cfg}
        self.restart()

    def restart(self) -> None:
        """A new probe and State object on the same state file, as after an agent restart."""
        self.state = State(self.dir / "state" / "state.db")
        [cfg] = parse_config({"logs": [self.cfg]}).logs
        self.probe = LogsProbe(cfg, self.state, lambda: self.now)

    def write(self, *lines: str, path: Path | None = None, end: str = "\n") -> None:
        with open(path or self.log, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + end)

    def run(self, advance: float = 30.0):
        self.now += advance
        result = asyncio.run(self.probe.run())
        self.result = result
        return result

    def totals(self) -> dict[str, float]:
        got = {s.label("level"): s.value for s in self.result.samples if s.name == "caretaker_log_lines_total"}
        assert set(got) == set(LEVELS)
        return {k: v for k, v in got.items() if v}

    def ratio(self) -> float:
        return next(s.value for s in self.result.samples if s.name == "caretaker_log_error_ratio")


ERR, WARN, INFO, DEBUG = "x ERROR e", "x WARN w", "x INFO i", "x DEBUG d"


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(tmp_path, start_at="beginning")


def test_counts_every_level_exactly(h):
    h.write(*LINES)
    assert h.run().ok, h.result.reason
    assert h.totals() == {"error": 5, "warning": 3, "info": 3, "debug": 2, "other": 4}
    assert h.ratio() == 5 / 13  # error lines among lines with a level
    assert h.result.summary.startswith("17 new line(s), 5 error(s); error ratio 38.5% over 15m")
    assert {s.label("app") for s in h.result.samples} == {"aperture"}


def test_first_run_starts_at_the_end_by_default(tmp_path):
    h = Harness(tmp_path)
    h.write(ERR, ERR, INFO)  # history from before the app was watched
    h.run()
    assert h.totals() == {} and h.ratio() == 0.0
    h.write(ERR, INFO)
    h.run()
    assert h.totals() == {"error": 1, "info": 1}
    h.write(INFO, path=tmp_path / "new.log")  # a file appearing later is new: read from its start
    h.run()
    assert h.totals() == {"error": 1, "info": 2}


def test_unterminated_line_waits_for_its_newline(h):
    h.write(INFO, "x ERROR half", end="")
    h.run()
    assert h.totals() == {"info": 1}
    h.write(" of a line")
    h.run()
    assert h.totals() == {"info": 1, "error": 1}


def test_rename_rotation_reads_the_old_files_tail(h):
    h.write(INFO, INFO)
    h.run()
    h.write(ERR, WARN)  # written just before the rotation, not read yet
    h.log.rename(h.dir / "app.log.1")  # logrotate's create: rename, then a new file
    h.write(DEBUG)
    h.run()
    assert h.totals() == {"info": 2, "error": 1, "warning": 1, "debug": 1}
    h.write(INFO)
    h.run()  # the old file gave nothing new: let go, and nothing counted twice
    assert h.totals() == {"info": 3, "error": 1, "warning": 1, "debug": 1}
    assert [r["path"] for r in h.state.query("SELECT path FROM log_files")] == [str(h.log)]


def test_rotation_into_the_glob_is_not_recounted(tmp_path):
    h = Harness(tmp_path, start_at="beginning", paths=[str(tmp_path / "app.log*")])
    h.write(ERR, INFO)
    h.run()
    h.log.rename(tmp_path / "app.log.1")
    h.write(INFO)
    h.run()
    assert h.totals() == {"error": 1, "info": 2}


def test_copytruncate_restarts_at_zero(h):
    h.write(*[INFO] * 10)
    h.run()
    shutil.copy(h.log, h.dir / "app.log.1.bak")
    with open(h.log, "r+b") as f:
        f.truncate(0)
    h.write(ERR)  # shorter than the saved offset
    h.run()
    assert h.totals() == {"info": 10, "error": 1}


def test_copytruncate_regrown_past_the_offset_is_caught_by_the_fingerprint(h):
    h.write(INFO, INFO)
    h.run()
    os.truncate(h.log, 0)
    h.write("y ERROR another start", *[WARN] * 5)  # longer than before the truncation, different head
    h.run()
    assert h.totals() == {"info": 2, "error": 1, "warning": 5}


def test_restart_resumes_without_recounting(h):
    h.write(ERR, INFO, INFO)
    h.run()
    h.write(WARN)
    h.restart()
    h.run()
    assert h.totals() == {"error": 1, "info": 2, "warning": 1}  # the counter continues from the state file
    h.restart()
    h.run()
    assert h.totals() == {"error": 1, "info": 2, "warning": 1}


def test_byte_cap_bounds_each_run(tmp_path):
    h = Harness(tmp_path, start_at="beginning", max_bytes_per_run=4096)
    line = "x INFO " + "z" * 92  # 100 bytes with the newline
    h.write(*[line] * 100)  # 10 000 bytes
    h.run()
    assert h.totals() == {"info": 40}  # 4096 bytes hold 40 complete lines
    assert h.result.summary.endswith("; 5.9 KiB left for the next run(s)")
    h.run()
    h.run()
    assert h.totals() == {"info": 100}
    assert "left for the next run" not in h.result.summary


def test_a_line_longer_than_the_cap_is_taken_whole(tmp_path):
    h = Harness(tmp_path, start_at="beginning", max_bytes_per_run=4096)
    h.write("x ERROR " + "z" * 5000, INFO)
    h.run()
    assert h.totals() == {"error": 1}
    h.run()
    h.run()
    assert h.totals() == {"error": 1, "other": 1, "info": 1}  # the long line's rest has no level of its own


def test_error_ratio_window(h):
    h.write(ERR, ERR, INFO, INFO)
    h.run(advance=0)
    assert h.ratio() == 0.5
    h.write(*[INFO] * 4)
    h.run(advance=600)
    assert h.ratio() == 2 / 8
    h.write(INFO, INFO)
    h.run(advance=600)  # the first run is older than 15 minutes now
    assert h.ratio() == 0 / 6


def test_no_matching_file_is_a_failure(tmp_path):
    h = Harness(tmp_path, paths=[str(tmp_path / "missing.log"), str(tmp_path / "*.txt")])
    result = h.run()
    assert not result.ok
    assert result.reason == f"no file matches {tmp_path / 'missing.log'}, {tmp_path / '*.txt'}"
    assert h.totals() == {}


def test_config_errors():
    for bad, message in [
        ({"app": "a", "paths": []}, "logs[0].paths: List should have at least 1 item"),
        ({"app": "a", "paths": ["/x"], "level_regex": "(["}, "logs[0].level_regex: Value error, invalid regular"),
        ({"app": "a", "paths": ["/x"], "max_bytes_per_run": 10}, "logs[0].max_bytes_per_run"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config({"logs": [bad]})
        assert message in str(err.value)
    with pytest.raises(ConfigError, match="logs: duplicate app"):
        parse_config({"logs": [{"app": "a", "paths": ["/x"]}, {"app": "a", "paths": ["/y"]}]})
