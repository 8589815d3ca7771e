"""A throw-away PostgreSQL cluster for the tests (Debian's ``postgresql`` package).

`Cluster` runs ``initdb`` into a temporary directory and ``pg_ctl start`` on a free port of
127.0.0.1, as the unprivileged user ``nobody`` when the tests run as root (PostgreSQL refuses
to run as root). Each test gets a schema of its own through the DSN's ``search_path``, so the
tests never see each other's runs. `.ci/run` installs the package when it is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["Cluster", "find_bindir"]


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    def version(path: str) -> int:
        name = Path(path).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """One PostgreSQL server for a test session: `start`, `stop`, `restart`, `dsn`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="flowdsl-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # the server refuses root: run it as nobody, in a dir nobody owns
            self.user = "nobody"
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._count = 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], user=self.user,
                              cwd=self.root, capture_output=True, text=True, check=check,
                              timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "flowdsl", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=100")
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.root / "log"),
                  "-o", options)

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def start_if_stopped(self) -> None:
        if not self.running():
            self.start()

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data), check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, schema: str | None = None, **params: Any) -> str:
        """A DSN to the cluster; with ``schema``, a fresh schema of that name is its search path."""
        url = f"postgresql://flowdsl@127.0.0.1:{self.port}/postgres"
        query = []
        if schema is not None:
            query.append("options=" + quote(f"-csearch_path={schema}"))
        query += [f"{k}={quote(str(v))}" for k, v in params.items()]
        return url + ("?" + "&".join(query) if query else "")

    def new_schema(self) -> str:
        """Create a fresh schema and return its name."""
        import psycopg

        self._count += 1
        name = f"t{os.getpid()}_{self._count}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return name

    def sql(self, schema: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in ``schema`` (autocommit); the rows it returns."""
        import psycopg

        with psycopg.connect(self.dsn(schema), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []
