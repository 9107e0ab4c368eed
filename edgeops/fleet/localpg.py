"""A throwaway PostgreSQL cluster on 127.0.0.1, for the fleet's tests and benchmarks (like :mod:`..agent.localbroker`).

:class:`LocalPostgres` runs ``initdb`` into a fresh directory, starts ``postgres`` on a free port with
its unix socket in that directory (trust authentication, user ``postgres``, fsync off: a test
cluster, never a deployment) and stops it again. PostgreSQL refuses to run as root, so as root the
directory is given to the ``postgres`` user and the programs run through ``runuser``::

    with LocalPostgres() as pg:
        url = pg.create_database("edgeops_test")   # postgresql://postgres@127.0.0.1:PORT/edgeops_test

Nothing here is imported by ``import edgeops``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from typing import Any

from ..errors import BackendUnavailableError, EdgeOpsError

__all__ = ["LocalPostgres"]

INSTALL = "install it with: apt-get install postgresql (the server binaries: initdb, pg_ctl)"


def _bindir() -> str | None:
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]), reverse=True)
    return os.path.dirname(found[0]) if found else None


class LocalPostgres:
    """A PostgreSQL server process owned by this object; ``stop()`` (or leaving the ``with``) ends it and removes
    its directory."""

    def __init__(self, workdir: str | None = None):
        self._own = workdir is None
        self.workdir = workdir or ""
        self.port = 0
        self._user: str | None = None

    @staticmethod
    def available() -> bool:
        """Whether the server binaries are here and, as root, a ``postgres`` user to run them."""
        if _bindir() is None:
            return False
        if os.geteuid() == 0:
            import pwd

            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return False
            return shutil.which("runuser") is not None
        return True

    @property
    def data(self) -> str:
        return os.path.join(self.workdir, "data")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 60.0) -> str:
        cmd = list(argv)
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.workdir)
        if proc.returncode != 0:
            raise EdgeOpsError(f"{' '.join(argv[:2])} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
        return proc.stdout

    def start(self) -> LocalPostgres:
        from ..agent.localbroker import _free_port

        bindir = _bindir()
        if bindir is None:
            raise BackendUnavailableError(f"PostgreSQL is not installed; {INSTALL}")
        if not self.workdir:
            self.workdir = tempfile.mkdtemp(prefix="edgeops-pg-", dir="/tmp")  # postgres must reach it
        os.makedirs(self.workdir, exist_ok=True)
        if os.geteuid() == 0:
            import pwd

            self._user = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.workdir, 0o700)
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run(os.path.join(bindir, "initdb"), "-D", self.data, "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--no-locale", "--no-sync")
        for attempt in range(3):
            self.port = _free_port()
            opts = (f"-p {self.port} -h 127.0.0.1 -k {self.workdir} -c fsync=off -c full_page_writes=off "
                    "-c max_connections=200")
            try:
                self._run(os.path.join(bindir, "pg_ctl"), "-D", self.data, "-o", opts, "-l",
                          os.path.join(self.workdir, "postgres.log"), "-w", "-t", "60", "start", timeout=90)
                return self
            except EdgeOpsError:
                if attempt == 2:
                    raise EdgeOpsError(f"PostgreSQL did not start; its log ends with:\n{self.log_tail()}") from None
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(os.path.join(self.workdir, "postgres.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name`` (dropped first if it exists); returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        bindir = _bindir()
        if bindir and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self._run(os.path.join(bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop")
            except (EdgeOpsError, subprocess.TimeoutExpired):
                pass
        if self._own and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
