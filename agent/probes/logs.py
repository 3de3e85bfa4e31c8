"""Logs probe: tail an app's log files, rotation-safe, and count lines by level (DESIGN.md §6 'logs').

Files are followed by identity (device, inode), not by name, as `tail -F` and log shippers do:
- rename rotation (logrotate's default `create`): the old file is found again in its directory by inode and
  read to its end before it is let go, so no line written before the rename is lost;
- `copytruncate`: the file shrinks below the saved offset, or its first bytes change (a fingerprint of the
  first KiB, as Vector's checksum fingerprint does), and it is read again from the start;
- a reused inode is caught by the same fingerprint.
The offsets, fingerprints and line totals are saved in the state file in one transaction per run, so a
restart neither recounts nor skips a line. Each run reads at most `max_bytes_per_run`; the rest waits.

Levels are error, warning, info, debug and other (no recognisable level: a stack-trace line, a blank line).
The error ratio is error lines / lines with a level, over `window`: a 40-line stack trace under one ERROR
line is one error, not 1/41 of one.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import stat
import zlib
from collections import Counter
from dataclasses import dataclass, field

from agent.config import Config, LogConfig
from agent.durations import format_duration
from agent.probes.base import Probe, ProbeResult
from agent.rules.format import format_value
from agent.samples import sample
from agent.state import State
from agent.store import Window

LEVELS = ("error", "warning", "info", "debug", "other")
# The first capturing group that matched (or the whole match) is the level word.
DEFAULT_LEVEL_REGEX = (
    r'\blevel="?(\w+)'  # logfmt: level=error
    r"|\[(VRB|DBG|INF|WRN|ERR|FTL)\]"  # Serilog's default template, as Jellyfin writes it
    r"|\b(TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|CRITICAL|FATAL)\b"  # Python logging, log4j, winston text
)
_WORDS = {
    **dict.fromkeys(("error", "err", "fatal", "ftl", "critical", "crit", "panic", "alert", "emerg"), "error"),
    **dict.fromkeys(("warning", "warn", "wrn"), "warning"),
    **dict.fromkeys(("info", "inf", "information", "notice"), "info"),
    **dict.fromkeys(("debug", "dbg", "trace", "verbose", "vrb"), "debug"),
}
LEVEL_SEARCH_CHARS = 256  # the level sits near the start; a message body further on is not searched
HEAD_BYTES = 1024  # fingerprint length


def normalize_level(value: object) -> str:
    """A level word (any case) or pino's number (10 trace … 60 fatal) → one of LEVELS."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "error" if value >= 50 else "warning" if value >= 40 else "info" if value >= 30 else "debug"
    return _WORDS.get(str(value).strip().lower(), "other")


@dataclass(frozen=True)
class Classifier:
    """Finds a line's level: a JSON object's `json_field`, else the first match of `regex`."""

    regex: re.Pattern[str]
    json_field: str = "level"

    def level(self, line: str) -> str:
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and self.json_field in obj:
                return normalize_level(obj[self.json_field])
        m = self.regex.search(line, 0, LEVEL_SEARCH_CHARS)
        if m is None:
            return "other"
        return normalize_level(next((g for g in m.groups() if g), m.group(0)))

    def count(self, data: bytes, counts: Counter) -> None:
        """Add the levels of the newline-separated lines in `data` to `counts`."""
        for line in data.decode("utf-8", "replace").split("\n"):
            counts[self.level(line.rstrip("\r"))] += 1


@dataclass
class Tracked:
    """One followed file: where it was last seen, how far it was read, and its head fingerprint."""

    path: str
    offset: int
    head_len: int
    head_crc: int


FileId = tuple[int, int]  # (st_dev, st_ino)


@dataclass
class TailResult:
    tracked: dict[FileId, Tracked]
    counts: Counter = field(default_factory=Counter)
    behind: int = 0  # bytes left for later runs because the per-run cap was reached
    problems: list[str] = field(default_factory=list)


def matching_files(patterns: list[str]) -> dict[FileId, tuple[str, int]]:
    """Regular files named by `patterns` (paths or globs): identity → (path, size)."""
    out: dict[FileId, tuple[str, int]] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                out.setdefault((st.st_dev, st.st_ino), (path, st.st_size))
    return out


def find_moved(fid: FileId, last_path: str) -> str | None:
    """Where a rotated file went: the entry of its old directory with the same inode (logrotate renames
    within the directory by default), or None once it is gone (deleted, compressed)."""
    directory = os.path.dirname(last_path) or "."
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.inode() == fid[1] and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_dev == fid[0]:
                        return entry.path
    except OSError:
        return None
    return None


class Tailer:
    """The blocking part of one run: reads new complete lines of every followed file, within a byte budget."""

    def __init__(self, classifier: Classifier, budget: int):
        self.classifier = classifier
        self.cap = self.budget = budget

    def read(self, path: str, t: Tracked, rotated: bool, result: TailResult) -> Tracked:
        """Count the lines after `t.offset`; returns the new position. Raises OSError."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(HEAD_BYTES)
            offset = t.offset
            if size < offset or len(head) < t.head_len or zlib.crc32(head[:t.head_len]) != t.head_crc:
                offset = 0  # truncated (copytruncate), or a different file behind a reused inode
            f.seek(offset)
            data = f.read(min(size - offset, self.budget))
        self.budget -= len(data)
        pending = size - offset - len(data)  # beyond this run's budget
        end = data.rfind(b"\n") + 1  # an unterminated last line is still being written
        if (rotated and not pending) or (not end and len(data) == self.cap):
            end = len(data)  # a rotated file's writer is done; a line longer than the cap is taken whole
        if end:
            self.classifier.count(data[:end].removesuffix(b"\n"), result.counts)
        if pending:
            result.behind += size - offset - end
        return Tracked(path, offset + end, len(head), zlib.crc32(head))

    def run(self, patterns: list[str], known: dict[FileId, Tracked], new_at_end: bool) -> TailResult:
        """One pass over the files; `new_at_end`: files never seen before start at their end (first run)."""
        result = TailResult({})
        live = matching_files(patterns)
        if not live:
            result.problems.append(f"no file matches {', '.join(patterns)}")
        for fid, t in known.items():  # rotated away first: their lines are the older ones
            if fid in live:
                continue
            moved = find_moved(fid, t.path)
            if moved is None:
                continue
            try:
                after = self.read(moved, t, True, result)
            except OSError as exc:
                result.problems.append(f"{moved}: {exc.strerror}")
                continue
            if after.offset != t.offset:  # keep following it while its writer may still be finishing
                result.tracked[fid] = after
        for fid, (path, size) in live.items():
            # An empty fingerprint matches any file: a new file starts at 0, or at its end on a first run.
            t = known.get(fid) or Tracked(path, size if new_at_end else 0, 0, 0)
            try:
                result.tracked[fid] = self.read(path, t, False, result)
            except OSError as exc:
                result.problems.append(f"{path}: {exc.strerror}")
                result.tracked[fid] = t
        return result


class LogsProbe(Probe):
    """Exports `caretaker_log_lines_total{app,level}` (every level in LEVELS, from 0) and
    `caretaker_log_error_ratio{app}`. Fails when no file matches or a file cannot be read."""

    kind = "logs"

    def __init__(self, cfg: LogConfig, state: State, clock):
        super().__init__(cfg.app, cfg.interval, cfg.timeout)
        self.cfg = cfg
        self.state = state
        self.clock = clock
        self.classifier = Classifier(re.compile(cfg.level_regex or DEFAULT_LEVEL_REGEX), cfg.json_level_field)
        self.window = Window(cfg.window)

    def _load(self) -> tuple[dict[FileId, Tracked], dict[str, int]]:
        files = {(r["dev"], r["inode"]): Tracked(r["path"], r["offset"], r["head_len"], r["head_crc"])
                 for r in self.state.query("SELECT * FROM log_files WHERE app = ?", (self.target,))}
        totals = {r["level"]: r["lines"]
                  for r in self.state.query("SELECT level, lines FROM log_lines WHERE app = ?", (self.target,))}
        return files, totals

    def _save(self, tracked: dict[FileId, Tracked], counts: Counter) -> None:
        """Offsets and totals commit together: a crash between runs never counts a line twice."""
        with self.state.tx() as db:
            db.execute("DELETE FROM log_files WHERE app = ?", (self.target,))
            db.executemany("INSERT INTO log_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(self.target, dev, ino, t.path, t.offset, t.head_len, t.head_crc)
                            for (dev, ino), t in tracked.items()])
            db.executemany("INSERT INTO log_lines VALUES (?, ?, ?) ON CONFLICT (app, level) "
                           "DO UPDATE SET lines = lines + excluded.lines",
                           [(self.target, level, counts[level]) for level in LEVELS])

    async def run(self) -> ProbeResult:
        known, totals = self._load()
        first_run = not totals and self.cfg.start_at == "end"
        tailer = Tailer(self.classifier, self.cfg.max_bytes_per_run)
        result = await asyncio.to_thread(tailer.run, self.cfg.paths, known, first_run)
        self._save(result.tracked, result.counts)
        now = self.clock()
        errors, leveled = result.counts["error"], sum(result.counts.values()) - result.counts["other"]
        self.window.add_counts(now, errors, leveled)
        ratio = self.window.ratio(now)
        samples = [sample("caretaker_log_lines_total", totals.get(level, 0) + result.counts[level],
                          app=self.target, level=level) for level in LEVELS]
        samples.append(sample("caretaker_log_error_ratio", ratio, app=self.target))
        summary = (f"{sum(result.counts.values())} new line(s), {errors} error(s); error ratio "
                   f"{format_value('ratio', ratio)} over {format_duration(self.cfg.window)}")
        if result.behind:
            summary += f"; {format_value('bytes', result.behind)} left for the next run(s)"
        return ProbeResult(samples, ok=not result.problems, reason="; ".join(result.problems), summary=summary)


def build(config: Config, deps) -> list[Probe]:
    return [LogsProbe(cfg, deps.state, deps.clock) for cfg in config.logs]
