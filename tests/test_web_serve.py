"""`station serve`: the page alone over an existing rep log, read-only, in its own process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from pathlib import Path

from support.web import AUTH, TOKEN


REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_station_serve_shows_an_existing_log_read_only(filled_db, tmp_path):
    port = free_port()
    env_token = {"HINGE_WEB__TOKEN": TOKEN, "HINGE_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "device", "serve", "--db", str(filled_db), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env_token}, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"{base}/api/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "station serve did not answer"
                time.sleep(0.1)
        assert health["db"]["readonly"] is True and health["live"] is None and health["db"]["path"] == str(filled_db)
        assert "session-row" in httpx.get(f"{base}/history").text
        assert proc.stdout is not None and proc.stdout.readline() == f"trainer page: {base}/\n"  # as `station run` says it
        refused = httpx.post(f"{base}/api/reps/1/corrections", json={"kind": "not_a_rep"}, headers=AUTH)
        assert refused.status_code == 409 and "read-only" in refused.json()["detail"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_station_serve_needs_an_existing_log(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "device", "serve", "--db", str(tmp_path / "none.db")],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_station_serve_on_every_interface_prints_where_a_phone_opens_it(tmp_path):
    """A page listening on 0.0.0.0 is not opened at 0.0.0.0: `station serve` prints this machine's
    URL and the LAN address and `<hostname>.local` a phone opens, as `station run` does."""
    from device.commands.serve import serve_lines
    from device.station.addresses import lan_ipv4, phone_urls

    lines = serve_lines("0.0.0.0", 8080, tmp_path / "station.db", writable=False, tty=False)
    text = "\n".join(lines)
    assert "0.0.0.0" not in text and lines[0] == "trainer page: http://127.0.0.1:8080/"
    phones = phone_urls("0.0.0.0", 8080, lan_ipv4(), socket.gethostname())
    assert phones and all(url in text for url in phones)
    assert f"{tmp_path / 'station.db'} (read-only)" in lines[-1]
    only_here = serve_lines("127.0.0.1", 8080, tmp_path / "station.db", writable=True, tty=False)
    assert "web.host" in only_here[1] and "(writable)" in only_here[-1]  # says how to open it from a phone
