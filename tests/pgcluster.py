"""A throwaway PostgreSQL 15 cluster on 127.0.0.1 for the test suite.

initdb/pg_ctl refuse to run as root, so they run as the `postgres` OS user on a directory that user owns
(LIBRARIES.md §C). The postmaster is stopped by its own PID, read from postmaster.pid, never by name.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import errors, sql

PG_BIN = Path("/usr/lib/postgresql/15/bin")
OS_USER = "postgres"
_STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def pg_available(bin_dir: Path = PG_BIN) -> bool:
    return (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_parent_dir() -> str | None:
    """Where clusters live: $CARETAKER_PG_TMPDIR, else tmpfs (/dev/shm) when roomy, else the system temp dir.

    On these VMs' ext4 every CREATE DATABASE costs ~0.4 s of file creation even with fsync off; tmpfs ~10 ms.
    """
    if env := os.environ.get("CARETAKER_PG_TMPDIR"):
        return env
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    return shm if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize > 2 << 30 else None


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (pg_ctl daemonizes it, so we can't wait() on it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


class PgCluster:
    def __init__(self, bin_dir: Path = PG_BIN, port: int | None = None, parent_dir: str | None = None) -> None:
        self.bin_dir = Path(bin_dir)
        self.port = port or free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix="caretaker-pg-", dir=parent_dir or default_parent_dir()))
        os.chmod(self.base_dir, 0o755)  # the postgres user must traverse it
        self.data_dir = self.base_dir / "data"
        self.sock_dir = self.base_dir / "sock"
        self.log_file = self.base_dir / "server.log"
        self._pid: int | None = None
        self._initialised = False
        atexit.register(self._atexit)

    # --- lifecycle -------------------------------------------------------------------------------

    def _as_postgres(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [*args] if os.geteuid() != 0 else ["runuser", "-u", OS_USER, "--", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)

    def init(self) -> None:
        for d in (self.data_dir, self.sock_dir):
            d.mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(d, OS_USER, OS_USER)
        if os.geteuid() == 0:
            self.log_file.touch()
            shutil.chown(self.log_file, OS_USER, OS_USER)
        self._as_postgres(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-A", "trust",
                          "-U", "postgres", "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C")
        self._initialised = True

    def start(self, timeout: float = 30) -> None:
        if not self._initialised:
            self.init()
        for attempt in range(3):  # the free port can be taken between probing and binding: pick another
            opts = (f"-p {self.port} -k {self.sock_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
            try:
                self._as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                                  "-o", opts, "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10)
                break
            except subprocess.CalledProcessError as e:
                tail = self.log_tail()
                if attempt < 2 and "could not bind" in tail and not self.running:
                    self.port = free_port()
                    continue
                raise RuntimeError(f"pg_ctl start failed: {e.stdout}{e.stderr}\n{tail}") from e
        self._pid = self.postmaster_pid()

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """Signal the postmaster by PID and wait, bounded, until it and its pid file are gone."""
        pid = self.postmaster_pid() or self._pid
        if pid is None or not _alive(pid):
            self._pid = None
            return
        os.kill(pid, _STOP_SIGNALS[mode])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid) and not (self.data_dir / "postmaster.pid").exists():
                self._pid = None
                return
            time.sleep(0.02)
        if mode != "immediate":
            self.stop("immediate", timeout=10)
            return
        os.kill(pid, signal.SIGKILL)
        raise RuntimeError(f"postmaster {pid} did not stop within {timeout}s")

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and _alive(pid)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _atexit(self) -> None:
        try:
            self.cleanup()
        except Exception:  # a safety net: never mask the interpreter's own exit status
            pass

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def __enter__(self) -> PgCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # --- SQL helpers -----------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        dsn = f"host=127.0.0.1 port={self.port} user={user} dbname={dbname}"
        return dsn + (f" password={password}" if password else "")

    def connect(self, dbname: str = "postgres", **kw: object) -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=5, **kw)

    def create_database(self, name: str, template: str | None = None) -> str:
        q = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            # FILE_COPY beats PG15's default WAL_LOG for a large template: it skips writing every page to WAL
            q += sql.SQL(" TEMPLATE {} STRATEGY FILE_COPY").format(sql.Identifier(template))
        with self.connect() as conn:
            for attempt in range(50):  # a template still held open by a just-closed session: retry ~5 s
                try:
                    conn.execute(q)
                    break
                except errors.ObjectInUse:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create_role(self, name: str, password: str, *, login: bool = True) -> str:
        """A plain (non-superuser) role; returns a DSN for it on the postgres database."""
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
                sql.Identifier(name), sql.SQL("LOGIN" if login else "NOLOGIN"), sql.Literal(password)))
        return self.dsn(user=name, password=password)

    def relation_filepath(self, dbname: str, relname: str) -> Path:
        with self.connect(dbname) as conn:
            row = conn.execute("SELECT pg_relation_filepath(%s::regclass)", (relname,)).fetchone()
        assert row and row[0], f"{relname} has no storage"
        return self.data_dir / row[0]
