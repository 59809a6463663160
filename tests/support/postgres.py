"""A real PostgreSQL for the tests: Debian's server binaries (package `postgresql`), a fresh cluster
made with initdb in a temporary directory, started with pg_ctl on a free loopback port, removed
afterwards. PostgreSQL refuses to run as root, so under root the cluster belongs to the
`postgres` user the Debian package creates (commands run through `runuser`).

Without the binaries a developer's run skips with how to install them; under CI=true it fails.
"""
from __future__ import annotations

import getpass
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from support.broker import free_port


def pg_bin_or_skip() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        reason = "PostgreSQL is not installed (apt-get install postgresql); the hub's PostgreSQL tests need a real server"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(initdb).parent


def _as_owner(cmd: list[str], owner: str) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner != getpass.getuser() else cmd


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """postgresql+psycopg://postgres@127.0.0.1:<port>/postgres on a cluster of its own."""
    bin_dir = pg_bin_or_skip()
    owner = "postgres" if os.geteuid() == 0 else getpass.getuser()
    base = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if owner != getpass.getuser():
        shutil.chown(base, owner)
        shutil.chown(sockets, owner)
    port = free_port()
    try:
        subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                  "--no-sync", "-E", "UTF8"], owner), check=True, capture_output=True, timeout=120)
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60",
                                  "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                                 owner), check=True, capture_output=True, timeout=90)
    except subprocess.CalledProcessError as err:
        log = (base / "log").read_text(errors="replace")[-2000:] if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {err.stderr.decode(errors='replace')}\n{log}") from None
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], owner),
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
