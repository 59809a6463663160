"""A real MQTT broker for the tests: Debian's `mosquitto`, started on a free loopback port with the
project's own broker settings (deploy/mosquitto/hinge.conf: its queue limits, persistence, packet
size) and a temporary listener, persistence folder and optionally a password file, an ACL and TLS;
stopped and restarted on the same port so a test can take the broker away in the middle of a set.
A test may override a shipped setting by name (`settings={"max_queued_messages": 50}`).

Without mosquitto a developer's run skips with how to install it; under CI=true it fails, since
there a test that needs the broker must not pass by not running.

    from support.broker import Mosquitto, mosquitto_or_skip
    with Mosquitto(tmp_path, users={"station-a": "pw"}, acl=ACL) as broker:
        broker.port ...
        broker.stop(); broker.start()   # same port, same persistent sessions
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "deploy" / "mosquitto" / "hinge.conf"
# The shipped config's lines that name the gym's own machine (its ports, files and certificates):
# each test broker gives its own instead.
MACHINE_KEYS = {"listener", "cafile", "certfile", "keyfile", "tls_version", "password_file", "acl_file",
                "persistence_location", "allow_anonymous", "persistence", "require_certificate"}


def shipped_settings() -> dict[str, str]:
    """deploy/mosquitto/hinge.conf's settings, but for those that name the gym's machine."""
    out: dict[str, str] = {}
    for line in SHIPPED_CONFIG.read_text().splitlines():
        key, _, value = line.strip().partition(" ")
        if key and not key.startswith("#") and key not in MACHINE_KEYS:
            out[key] = value.strip()
    return out



def mosquitto_or_skip() -> str:
    """The mosquitto binary; missing, skip with the how-to (fail under CI=true)."""
    found = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/sbin/mosquitto") if os.access(p, os.X_OK)), None)
    if found is None:
        reason = "mosquitto is not installed (apt-get install mosquitto mosquitto-clients); the MQTT tests need a real broker"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class BrokerTls:
    """Files for a TLS listener (PEM): the CA that signed the server certificate, the server's pair."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False


class Mosquitto:
    """One mosquitto process on 127.0.0.1:<port>, its config, password file, ACL and persistence in
    `workdir`. `start` waits until the port accepts connections; `stop` ends it with SIGTERM (it
    saves its persistent sessions, as a service restart would)."""

    def __init__(
        self,
        workdir: Path,
        users: Optional[dict[str, str]] = None,
        acl: Optional[str] = None,
        tls: Optional[BrokerTls] = None,
        port: Optional[int] = None,
        allow_anonymous: Optional[bool] = None,
        persistence: bool = True,
        settings: Optional[dict[str, Union[str, int]]] = None,
    ):
        self.binary = mosquitto_or_skip()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.users = dict(users or {})
        self.acl = acl
        self.tls = tls
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.allow_anonymous = (not self.users) if allow_anonymous is None else allow_anonymous
        self.persistence = persistence
        self.settings = {**shipped_settings(), **{k: str(v) for k, v in (settings or {}).items()}}
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: Optional[subprocess.Popen] = None
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            # As root mosquitto would switch to the `mosquitto` user, who cannot read a test's files.
            f"user {getpass.getuser()}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            *(f"{key} {value}" for key, value in self.settings.items()),
        ]
        if self.persistence:
            store = self.workdir / "persistence"
            store.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {store}/"]
        if self.users:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            passwd.chmod(0o600)
            tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            for name, password in self.users.items():
                subprocess.run([tool, "-b", str(passwd), name, password], check=True, capture_output=True)
            lines.append(f"password_file {passwd}")
        if self.acl is not None:
            acl_path = self.workdir / "acl"
            acl_path.write_text(self.acl)
            acl_path.chmod(0o600)
            lines.append(f"acl_file {acl_path}")
        if self.tls is not None:
            lines += [f"cafile {self.tls.cafile}", f"certfile {self.tls.certfile}", f"keyfile {self.tls.keyfile}",
                      f"require_certificate {'true' if self.tls.require_certificate else 'false'}"]
            if self.tls.require_certificate:
                lines.append("use_identity_as_username false")
        self.config_path.write_text("\n".join(lines) + "\n")

    # --- lifetime ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        if self.running:
            return self
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def make_certificates(folder: Path, name: str = "hinge-test") -> BrokerTls:
    """A throwaway CA and a broker certificate it signed for 127.0.0.1 (openssl, EC keys: quick)."""
    tool = shutil.which("openssl")
    if tool is None:
        reason = "openssl is not installed (apt-get install openssl); the MQTT TLS test makes its certificates with it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / f"{name}-ca.key", folder / f"{name}-ca.crt"
    key, csr, crt = folder / f"{name}-broker.key", folder / f"{name}-broker.csr", folder / f"{name}-broker.crt"
    ext = folder / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for args in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-subj", f"/CN={name} CA", "-days", "2"],
        ["req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
         "-extfile", ext],
    ):
        subprocess.run([tool, *map(str, args)], check=True, capture_output=True)
    return BrokerTls(ca_crt, crt, key)


@pytest.fixture
def broker(tmp_path) -> Iterator["Mosquitto"]:
    """An anonymous loopback broker for one test."""
    with Mosquitto(tmp_path / "mosquitto") as running:
        yield running
