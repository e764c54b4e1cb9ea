"""Real PostgreSQL for the local stack and the tests, without Docker.

Either an existing server (a libpq URL) or a cluster created from the system's PostgreSQL
binaries (``initdb``/``pg_ctl``) in a directory of ours, listening on 127.0.0.1 only. As root
(these machines, CI) the cluster runs as the unprivileged ``postgres`` user, because PostgreSQL
refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket

# Runs the system's PostgreSQL binaries with fixed arguments.
import subprocess  # nosec B404
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


def find_pg_binary(name: str) -> str:
    """Locate a PostgreSQL server binary: $PG_BINDIR, pg_config --bindir, Debian's layout, PATH."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.path.join(os.environ["PG_BINDIR"], name))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)  # nosec B603
        if out.returncode == 0:
            candidates.append(os.path.join(out.stdout.strip(), name))
    candidates += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = shutil.which(name)
    if found:
        candidates.append(found)
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise FileNotFoundError(f"PostgreSQL binary {name!r} not found: install PostgreSQL or set PG_BINDIR")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _service_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


def _run_as_service_user(args: list[str], log: Path | None = None) -> None:
    ids = _service_user()
    kwargs: dict = {"check": True}
    if ids:
        kwargs.update(user=ids[0], group=ids[1], extra_groups=[])
    if log is not None:
        with open(log, "ab") as fh:
            subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT, **kwargs)  # nosec B603
    else:
        kwargs["check"] = False
        done = subprocess.run(args, capture_output=True, text=True, **kwargs)  # nosec B603
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


@dataclass
class LocalCluster:
    """A PostgreSQL cluster in ``base_dir`` (data/, socket/, log), on 127.0.0.1:``port``."""

    base_dir: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "socket").mkdir(exist_ok=True)
        ids = _service_user()
        if ids:
            for p in (self.base_dir, self.base_dir / "socket"):
                os.chown(p, *ids)
            # The server's user must be able to reach its directory: let it traverse (o+x, not
            # read) the root-owned ancestors that do not allow it (mkdtemp makes 0700 dirs).
            for parent in self.base_dir.resolve().parents:
                st = parent.stat()
                if st.st_uid == 0 and not st.st_mode & 0o001:
                    parent.chmod(st.st_mode | 0o001)
        _run_as_service_user(
            [
                find_pg_binary("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )

    def start(self, *, fast_unsafe: bool = False) -> None:
        """Start the server; ``fast_unsafe`` turns off durability (throwaway test clusters only)."""
        self.init()
        opts = [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.base_dir / 'socket'}"]
        if fast_unsafe:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        log = self.base_dir / "postgres.log"
        if os.geteuid() == 0 and not log.exists():
            log.touch()
            os.chown(log, *_service_user())
        _run_as_service_user(
            [find_pg_binary("pg_ctl"), "-D", str(self.data_dir), "-l", str(log), "-o", " ".join(opts), "-w", "-t", "60", "start"]
        )
        wait_for_server(self.url)

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        _run_as_service_user([find_pg_binary("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def is_running(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False


def wait_for_server(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def create_database(admin_url: str, dbname: str, *, exist_ok: bool = False) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists and not exist_ok:
            raise RuntimeError(f"database {dbname} already exists")
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return with_database(admin_url, dbname)


def drop_database(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def airflow_connection(url: str, *, login: str | None = None, password: str | None = None) -> str:
    """A PostgreSQL URL as an Airflow connection (the JSON form of ``AIRFLOW_CONN_<ID>``),
    optionally as another role: the one way the stack, the benchmark and the tests make them."""
    import json

    u = urlsplit(url)
    conn: dict[str, object] = {
        "conn_type": "postgres",
        "host": u.hostname,
        "port": u.port or 5432,
        "login": login or u.username,
        "schema": u.path.lstrip("/"),
    }
    if password or u.password:
        conn["password"] = password or u.password
    return json.dumps(conn)
