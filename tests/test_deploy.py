"""deploy/: the installer run for real against a scratch root, the systemd units checked by systemd's
own tools, and the example config loaded by the station.

The installer's system-changing commands (apt-get, useradd, chown, systemctl, runuser, python3 -m
venv, pip, the station's model fetch) are replaced at the PATH boundary by small fakes that log
their arguments and keep the state a real system would (installed packages, users and groups,
enabled units), so idempotence is checked against that state. Everything else (file writes, modes,
symlinks, sed, sha256sum...) runs for real.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from device.config import load_settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
INSTALL = DEPLOY / "install.sh"
UNITS = ["hinge-station.service", "hinge-station-log.service", "hinge-station-backup.service", "hinge-station-backup.timer",
         "hinge-hub.service"]
SERVICES = [u for u in UNITS if u.endswith(".service")]
PI_OS = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'


def need(tool: str) -> str:
    """The tool's path; without it a developer's run skips, and CI (CI=true, where .ci/run installs
    it) fails: there a missing tool means the check did not run, not that it passed."""
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed (apt-get install -y {'systemd' if tool.startswith('systemd') else tool})"
        missing(reason)
    return path


def missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must install it")
    pytest.skip(f"{reason}; CI installs it")


# --- fakes at the system boundary ---------------------------------------------------------------

FAKE = r'''#!{python}
"""Fake `{name}`: logs its arguments and keeps system state in $FAKE_STATE (JSON)."""
import json, os, sys
from pathlib import Path

name, args = "{name}", sys.argv[1:]
state_path = Path(os.environ["FAKE_STATE"])
state = json.loads(state_path.read_text())
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([name, *args]) + "\n")

def save():
    state_path.write_text(json.dumps(state))

def positional(items):
    return [a for a in items if not a.startswith("-")]

if name == "apt-get":
    if args and args[0] != "update" and "install" in args:
        state["packages"] += positional(args[args.index("install") + 1:])
        save()
elif name == "dpkg-query":
    if args[-1] in state["packages"]:
        print("install ok installed", end="")
        sys.exit(0)
    print(f"dpkg-query: no packages found matching {{args[-1]}}", file=sys.stderr)
    sys.exit(1)
elif name == "dpkg":
    print(os.environ.get("FAKE_ARCH", "arm64"))
elif name == "getent":
    kind, key = args
    if kind == "passwd" and key in state["users"]:
        print(f"{{key}}:x:999:999::/var/lib/{{key}}:/usr/sbin/nologin")
    elif kind == "group" and key in state["groups"]:
        print(f"{{key}}:x:44:" + ",".join(state["groups"][key]))
    else:
        sys.exit(2)
elif name == "useradd":
    user = args[-1]
    assert user not in state["users"], f"useradd: user {{user}} already exists"
    state["users"].append(user)
    state["groups"].setdefault(user, [])
    if "--groups" in args:
        for group in args[args.index("--groups") + 1].split(","):
            assert group in state["groups"], f"useradd: group {{group}} does not exist"
            state["groups"][group].append(user)
    save()
elif name == "usermod":
    group, user = args[args.index("-G") + 1], args[-1]
    state["groups"][group].append(user)
    save()
elif name == "userdel":
    state["users"].remove(args[-1])
    for members in state["groups"].values():
        if args[-1] in members:
            members.remove(args[-1])
    state["groups"].pop(args[-1], None)
    save()
elif name == "chown":
    user, _, group = args[0].partition(":")
    for who, known in ((user, state["users"]), (group, state["groups"])):
        if who and who != "root" and who not in known:
            sys.exit(f"chown: invalid user/group: {{who}}")
elif name == "runuser":
    user = args[args.index("-u") + 1]
    if user not in state["users"]:
        sys.exit(f"runuser: user {{user}} does not exist")
    command = args[args.index("--") + 1:]
    os.execvp(command[0], command)
elif name == "systemctl":
    verb, units = args[0], positional(args[1:])
    root = Path(os.environ["FAKE_ROOT"])
    if verb == "is-system-running":  # "offline" in a chroot or image build, where systemd is not PID 1
        print(os.environ.get("FAKE_SYSTEM_STATE", "running"))
        sys.exit(0 if os.environ.get("FAKE_SYSTEM_STATE", "running") == "running" else 1)
    if verb == "is-enabled":
        sys.exit(0 if units[0] in state["enabled"] else 1)
    if verb == "is-active":
        sys.exit(0 if units[0] in state["active"] else 3)
    for unit in units:
        if verb in ("enable", "start", "restart") and unit != "systemd-journald":
            if not (root / "etc/systemd/system" / unit).is_file():
                sys.exit(f"Failed to {{verb}} unit: Unit file {{unit}} does not exist.")
        if verb in ("start", "restart") and unit == os.environ.get("FAKE_START_FAILS"):
            sys.exit(f"Job for {{unit}} failed because a timeout was exceeded.")
        if verb == "enable" and unit not in state["enabled"]:
            state["enabled"].append(unit)
        if verb in ("start", "restart") and unit not in state["active"]:
            state["active"].append(unit)
        if verb == "disable":
            state["enabled"] = [u for u in state["enabled"] if u != unit]
            if "--now" in args:
                state["active"] = [u for u in state["active"] if u != unit]
    save()
elif name == "python3":
    if args[0] == "-c":
        if "numpy" in args[1]:
            version = os.environ.get("FAKE_NUMPY", "")
            print(version) if version else sys.exit(1)
        else:
            print(os.environ.get("FAKE_PYTHON_VERSION", "3.11"))
    elif args[:2] == ["-m", "venv"]:
        venv = Path(args[-1])
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.11.2\n")
        fake_python = venv / "bin" / "python"
        fake_python.write_text(Path(os.environ["FAKE_DIR"], "venv-python").read_text())
        fake_python.chmod(0o755)
elif name == "venv-python":
    assert args[:3] == ["-m", "pip", "install"], args
    source = Path(args[-1].split("[")[0])
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(["pip-source", *sorted(p.name for p in source.iterdir())]) + "\n")
    station = Path(sys.argv[0]).with_name("station")
    station.write_text(Path(os.environ["FAKE_DIR"], "venv-station").read_text())
    station.chmod(0o755)
elif name == "venv-station":
    if args[-1:] == ["retire"]:  # the station's config must still be there; FAKE_RETIRE_FAILS: the broker is away
        if not Path(args[args.index("--config") + 1]).is_file():
            sys.exit("error: no config file")
        if os.environ.get("FAKE_RETIRE_FAILS"):
            sys.exit("error: mqtt: cannot connect: [Errno 111] Connection refused")
    if args[-2:] == ["quantize", "--help"]:
        sys.exit(0 if os.environ.get("FAKE_HAS_QUANTIZE", "1") == "1" else 2)
    if "quantize" in args:
        models = Path(args[args.index("--models-dir") + 1])
        (models / "quantized.json").write_text('{{"selected": null, "variants": []}}')
'''


class Machine:
    """A scratch root plus the fake system commands, and the installer run against both."""

    def __init__(self, tmp_path: Path, os_release: str = PI_OS, groups=("video", "gpio")):
        self.root = tmp_path / "root"
        self.fakes = tmp_path / "fakes"
        self.log = tmp_path / "commands.jsonl"
        self.state_file = tmp_path / "state.json"
        (self.root / "etc").mkdir(parents=True)
        (self.root / "etc/os-release").write_text(os_release)
        self.fakes.mkdir()
        self.state_file.write_text(json.dumps({"packages": [], "users": [], "groups": {g: [] for g in groups},
                                               "enabled": [], "active": []}))
        for name in ["apt-get", "dpkg-query", "dpkg", "getent", "useradd", "usermod", "userdel", "chown", "runuser",
                     "systemctl", "python3", "venv-python", "venv-station"]:
            fake = self.fakes / name
            fake.write_text(FAKE.format(python=sys.executable, name=name))
            fake.chmod(0o755)
        self.env = {**os.environ, "PATH": f"{self.fakes}:{os.environ['PATH']}", "PYTHON": str(self.fakes / "python3"),
                    "FAKE_STATE": str(self.state_file), "FAKE_LOG": str(self.log), "FAKE_DIR": str(self.fakes),
                    "FAKE_ROOT": str(self.root), "FAKE_NUMPY": "1.24.2"}

    def install(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        self.log.write_text("")
        return subprocess.run(["bash", str(INSTALL), "--root", str(self.root), *args], capture_output=True, text=True,
                              env={**self.env, **env}, timeout=120)

    @property
    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def commands(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def changes(self) -> list[list[str]]:
        """Logged commands that would change a real system (queries and the fakes' internals left out)."""
        queries = {("systemctl", "is-enabled"), ("systemctl", "is-active"), ("systemctl", "is-system-running"),
                   ("python3", "-c")}
        return [c for c in self.commands()
                if c[0] not in ("dpkg-query", "dpkg", "getent", "venv-station", "pip-source") and tuple(c[:2]) not in queries]

    def tree(self) -> dict[str, tuple]:
        """Every path under the root with its type, mode, mtime and content hash."""
        out = {}
        for path in sorted(self.root.rglob("*")):
            st = path.lstat()
            body = path.read_bytes() if path.is_file() and not path.is_symlink() else os.readlink(path) if path.is_symlink() else b""
            digest = hashlib.sha256(body if isinstance(body, bytes) else body.encode()).hexdigest()
            out[str(path.relative_to(self.root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_mtime_ns, digest)
        return out

    def mode(self, rel: str) -> int:
        return stat.S_IMODE((self.root / rel).stat().st_mode)


@pytest.fixture
def machine(tmp_path) -> Machine:
    return Machine(tmp_path)


def ran(machine: Machine, *prefix: str) -> list[list[str]]:
    return [c for c in machine.commands() if c[: len(prefix)] == list(prefix)]


# --- static checks ------------------------------------------------------------------------------


def test_shell_scripts_are_shellcheck_clean():
    shellcheck = need("shellcheck")
    scripts = [INSTALL, *sorted((REPO / "scripts").glob("*.sh")), REPO / ".ci" / "run"]
    proc = subprocess.run([shellcheck, "--shell=bash", *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def verify_root(tmp_path: Path) -> Path:
    """A root holding systemd's own units (for the targets ours refer to), our units, and an
    executable where ExecStart= points, as the installer leaves it."""
    system_units = Path("/usr/lib/systemd/system")
    if not (system_units / "multi-user.target").exists():
        missing(f"{system_units} has no systemd units (apt-get install -y systemd)")
    root = tmp_path / "verify-root"
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(DEPLOY / "systemd" / unit, root / "etc/systemd/system" / unit)
    station = root / "opt/hinge-station/venv/bin/station"
    station.parent.mkdir(parents=True)
    station.write_text("#!/bin/sh\n")
    station.chmod(0o755)
    return root


def systemd_verify(root: Path, units: list[str]) -> subprocess.CompletedProcess:
    analyze = need("systemd-analyze")
    return subprocess.run([analyze, "verify", "--man=no", f"--root={root}", *units], capture_output=True, text=True)


def test_units_pass_systemd_analyze_verify(tmp_path):
    """systemd 252 exits 0 even on unknown keys or bad values (it only warns), so any output fails."""
    proc = systemd_verify(verify_root(tmp_path), UNITS)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stdout + proc.stderr


def test_verify_catches_a_mistyped_unit(tmp_path):
    """The check above can fail: a misspelt key and a bad value are reported."""
    root = verify_root(tmp_path)
    unit = root / "etc/systemd/system/hinge-station.service"
    unit.write_text(unit.read_text().replace("WatchdogSec=30", "WatchdogSecs=30").replace("ProtectSystem=strict", "ProtectSystem=stricter"))
    proc = systemd_verify(root, ["hinge-station.service"])
    assert "Unknown key 'WatchdogSecs'" in proc.stderr and "stricter" in proc.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_services_are_hardened(tmp_path, service):
    """systemd's own exposure score (0 = locked down, 10 = exposed); 'OK' ends at about 4.9."""
    root = verify_root(tmp_path)
    analyze = need("systemd-analyze")
    proc = subprocess.run([analyze, "security", "--offline=true", f"--root={root}", "--threshold=20", service],
                          capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout).group(1))
    assert score <= 2.0, proc.stdout[-3000:]


def test_units_declare_watchdog_restart_hardening_and_data_dir():
    for service in SERVICES:
        unit = (DEPLOY / "systemd" / service).read_text()
        keys: dict[str, list[str]] = {}
        for line in unit.splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                keys.setdefault(key, []).append(value)
        for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                           "User": "hinge-station", "StateDirectory": "hinge-station"}.items():
            assert keys.get(key) == [value], (service, key)
        assert any("HINGE_CONFIG=/etc/hinge-station/config.toml" in v for v in keys["Environment"])
        if service != "hinge-station-backup.service":
            assert keys["Type"] == ["notify"] and keys["WatchdogSec"] == ["30"] and keys["Restart"] == ["on-failure"]
            assert keys["DevicePolicy"] == ["closed"]
            assert int(keys["LimitNOFILE"][0]) >= 1024  # set, not the distribution's default
    from device.commands.page_process import PAGE_MAX_OPEN_FILES
    coach_keys = dict(line.split("=", 1) for line in (DEPLOY / "systemd/hinge-station.service").read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
    assert int(coach_keys["LimitNOFILE"]) == PAGE_MAX_OPEN_FILES  # what the page process raises itself to
    coach = (DEPLOY / "systemd/hinge-station.service").read_text()
    headless = (DEPLOY / "systemd/hinge-station-log.service").read_text()
    assert "ExecStart=/opt/hinge-station/venv/bin/station run" in coach and "char-gpiochip" in coach
    assert "ExecStart=/opt/hinge-station/venv/bin/station log" in headless and "gpiochip" not in headless
    assert "Conflicts=hinge-station-log.service" in coach and "Conflicts=hinge-station.service" in headless


def syscalls(name: str) -> set[str]:
    """The system calls a SystemCallFilter name stands for: a group (@resources) as this machine's
    systemd expands it, nested groups included, or the one call it names."""
    if not name.startswith("@"):
        return {name}
    listing = subprocess.run([need("systemd-analyze"), "syscall-filter", "--no-pager", name], capture_output=True,
                             text=True, check=True).stdout
    out: set[str] = set()
    for line in listing.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            out |= syscalls(word)
    return out


def unit_syscalls(unit: str) -> set[str]:
    """What a unit's SystemCallFilter= lines allow, read as systemd reads them: the first line is an
    allow list, and each later one adds to it or (with ~) takes away from it, in order."""
    allowed: set[str] = set()
    lines = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("SystemCallFilter=")]
    assert lines and not lines[0].startswith("~")
    for value in lines:
        names = set().union(*(syscalls(n) for n in value.lstrip("~").split()))
        allowed = allowed - names if value.startswith("~") else allowed | names
    return allowed


def errno_of_nice_under(allowed: set[str]) -> int:
    """os.nice(10), as the page process calls it, in a child process under a seccomp filter allowing
    only `allowed` and failing the rest with EPERM (the unit's SystemCallErrorNumber), loaded through
    libseccomp as systemd loads it: the errno it failed with, 0 if it worked."""
    import ctypes
    import errno

    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: filter itself, try, report, leave
        try:
            ctx = ctypes.c_void_p(lib.seccomp_init(ctypes.c_uint32(0x00050000 | errno.EPERM)))  # SCMP_ACT_ERRNO
            for name in allowed:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number >= 0:
                    lib.seccomp_rule_add(ctx, ctypes.c_uint32(0x7FFF0000), number, 0)  # SCMP_ACT_ALLOW
            if lib.seccomp_load(ctx) != 0:
                os.write(write_end, b"-1")
            else:
                try:
                    os.nice(10)
                    os.write(write_end, b"0")
                except OSError as err:
                    os.write(write_end, str(err.errno).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 16)
    os.close(read_end)
    os.waitpid(pid, 0)
    return int(answer)


def test_the_station_unit_lets_the_trainer_page_lower_its_own_priority():
    """The page process lowers its priority below the live loop's (os.nice, i.e. setpriority):
    under the unit's own system call filter it must be allowed, or the page competes with coaching
    at the loop's priority. The filter is applied for real, in a child process, as systemd would."""
    allowed = unit_syscalls((DEPLOY / "systemd/hinge-station.service").read_text())
    assert "setrlimit" not in allowed and "mount" not in allowed  # the filter still bites
    assert errno_of_nice_under(syscalls("@system-service") - syscalls("@resources")) != 0  # the check can fail
    assert errno_of_nice_under(allowed) == 0


def test_journald_limits_use_keys_journald_knows():
    candidates = [Path("/etc/systemd/journald.conf"), Path("/usr/lib/systemd/journald.conf")]
    template = next((p for p in candidates if p.is_file()), None)
    if template is None:
        missing("no journald.conf to compare key names with (apt-get install -y systemd)")
    known = set(re.findall(r"^#?(\w+)=", template.read_text(), re.M))
    ours = re.findall(r"^(\w+)=", (DEPLOY / "journald.conf.d/hinge-station.conf").read_text(), re.M)
    assert ours and set(ours) <= known, set(ours) - known


def test_logrotate_rotates_the_headless_rep_log(tmp_path):
    logrotate = need("logrotate")
    data = tmp_path / "data"
    data.mkdir()
    jsonl = data / "reps.jsonl"
    jsonl.write_text('{"rep": 1}\n{"rep": 2}\n')
    me = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    conf = (DEPLOY / "logrotate.d/hinge-station").read_text()
    conf = conf.replace("/var/lib/hinge-station/", f"{data}/").replace("su hinge-station hinge-station", f"su {me} {group}")
    (tmp_path / "rotate.conf").write_text(conf)
    proc = subprocess.run([logrotate, "--force", "--state", str(tmp_path / "state"), str(tmp_path / "rotate.conf")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert jsonl.read_text() == ""  # truncated in place: the station's open file keeps working
    assert (data / "reps.jsonl.1").read_text() == '{"rep": 1}\n{"rep": 2}\n'


def test_example_config_loads_with_the_station_settings():
    settings = load_settings(DEPLOY / "config.example.toml")
    assert settings.data_dir == Path("/var/lib/hinge-station")
    assert settings.models_dir == Path("/var/lib/hinge-station/models")
    assert settings.store.db_path == Path("/var/lib/hinge-station/station.db")
    assert settings.web.token is None and settings.web.camera_preview is False
    assert re.search(r'^# token = ""$', (DEPLOY / "config.example.toml").read_text(), re.M), "install.sh fills in this line"


# --- the installer, for real, against a scratch root ---------------------------------------------


def test_install_writes_the_station_and_prints_the_token_once(machine):
    proc = machine.install()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = machine.root

    for unit in UNITS:
        assert (root / "etc/systemd/system" / unit).read_bytes() == (DEPLOY / "systemd" / unit).read_bytes()
        assert machine.mode(f"etc/systemd/system/{unit}") == 0o644
    assert (root / "etc/systemd/journald.conf.d/hinge-station.conf").is_file()
    assert (root / "etc/logrotate.d/hinge-station").is_file()
    assert os.readlink(root / "usr/local/bin/station") == "/opt/hinge-station/venv/bin/station"
    assert (root / "opt/hinge-station/doc/deploy.md").read_bytes() == (DEPLOY / "README.md").read_bytes()
    assert "numpy==1.24.2" in (root / "opt/hinge-station/constraints.txt").read_text().splitlines()
    for path, mode in {"etc/hinge-station": 0o750, "var/lib/hinge-station": 0o750, "var/lib/hinge-station/models": 0o750,
                       "opt/hinge-station": 0o755, "etc/hinge-station/config.toml": 0o640}.items():
        assert machine.mode(path) == mode, path

    config = root / "etc/hinge-station/config.toml"
    settings = load_settings(config)
    token = settings.web.token.get_secret_value()
    assert len(token) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert settings.data_dir == Path("/var/lib/hinge-station")
    assert proc.stdout.count(token) == 1 and token not in proc.stderr

    state = machine.state
    assert set(state["packages"]) == {"python3-venv", "python3-picamera2", "python3-lgpio", "sqlite3", "logrotate",
                                      "espeak-ng", "alsa-utils"}
    assert "hinge-station" in state["users"]
    assert "hinge-station" in state["groups"]["video"] and "hinge-station" in state["groups"]["gpio"]
    assert ["useradd", "--system", "--user-group", "--home-dir", "/var/lib/hinge-station", "--no-create-home",
            "--shell", "/usr/sbin/nologin", "--groups", "video,gpio", "hinge-station"] in machine.commands()
    owned = {(c[1], Path(c[2]).relative_to(root).as_posix()) for c in ran(machine, "chown")}
    assert ("root:hinge-station", "etc/hinge-station") in owned
    assert ("hinge-station:hinge-station", "var/lib/hinge-station") in owned
    assert any(who == "root:hinge-station" and path.startswith("etc/hinge-station/config.toml.") for who, path in owned)
    assert state["enabled"] == ["hinge-station.service", "hinge-station-backup.timer"]
    assert set(state["active"]) == {"hinge-station.service", "hinge-station-backup.timer", "systemd-journald"}
    assert ran(machine, "systemctl", "restart", "systemd-journald")  # journald reads its drop-ins only at start
    pip = ran(machine, "venv-python", "-m", "pip", "install")
    assert len(pip) == 1 and pip[0][-1].endswith("[pi,quantize]") and str(root / "opt/hinge-station/constraints.txt") in pip[0]
    assert {"pyproject.toml", "README.md", "device", "models"} <= set(ran(machine, "pip-source")[0][1:])
    assert not Path(pip[0][-1].split("[")[0]).exists()  # the build copy is cleaned up
    fetch = [c for c in ran(machine, "runuser", "-u", "hinge-station") if "fetch" in c]
    assert fetch and fetch[0][-2:] == ["--models-dir", str(root / "var/lib/hinge-station/models")]
    assert ran(machine, "systemctl", "daemon-reload")


def test_second_run_changes_nothing(machine):
    assert machine.install().returncode == 0
    before = machine.tree()
    proc = machine.install()
    assert proc.returncode == 0, proc.stderr
    assert machine.tree() == before
    changes = [c for c in machine.changes() if c[0] != "runuser"]  # runuser: the idempotent fetch and doctor
    assert changes == [], changes
    assert "token" not in proc.stdout.lower().replace("write token are unchanged", "")
    assert all("fetch" in c or "doctor" in c for c in ran(machine, "runuser"))


def test_an_existing_config_is_kept(machine):
    config = machine.root / "etc/hinge-station/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('data_dir = "/var/lib/hinge-station"\n[web]\nport = 9090\ntoken = "mine-and-long-enough-1234"\n')
    proc = machine.install()
    assert proc.returncode == 0, proc.stderr
    assert load_settings(config).web.port == 9090
    assert "mine-and-long-enough-1234" in config.read_text() and "Page write token" not in proc.stdout
    assert ":9090/" in proc.stdout


def test_dry_run_prints_every_step_and_writes_nothing(machine):
    before = machine.tree()
    proc = machine.install("--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert machine.tree() == before
    assert machine.changes() == [], machine.changes()
    out = proc.stdout
    for expected in ["would run: apt-get update", "would run: env DEBIAN_FRONTEND=noninteractive apt-get install",
                     "would run: useradd --system", "python3 -m venv --system-site-packages",
                     "-m pip install", "would write /etc/hinge-station/config.toml",
                     "would write /etc/systemd/system/hinge-station.service", "models fetch",
                     "would run: systemctl daemon-reload", "would run: systemctl enable hinge-station.service",
                     "would run: systemctl start hinge-station.service", "nothing was changed"]:
        assert expected in out, expected


def test_uninstall_keeps_the_rep_database_unless_purged(machine):
    assert machine.install().returncode == 0
    data = machine.root / "var/lib/hinge-station"
    db = data / "station.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE reps (id INTEGER PRIMARY KEY, fault TEXT)")
        conn.execute("INSERT INTO reps (fault) VALUES ('knees_forward')")
    conn.close()
    (data / "reps.jsonl").write_text('{"rep": 1}\n')
    (data / "models" / "pose_detection.tflite").write_bytes(b"model")

    proc = machine.install("--uninstall")
    assert proc.returncode == 0, proc.stderr
    root = machine.root
    for gone in ["opt/hinge-station", "etc/hinge-station", "usr/local/bin/station", "var/lib/hinge-station/models",
                 "etc/systemd/journald.conf.d/hinge-station.conf", "etc/logrotate.d/hinge-station",
                 *(f"etc/systemd/system/{u}" for u in UNITS)]:
        assert not (root / gone).exists() and not (root / gone).is_symlink(), gone
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT fault FROM reps").fetchall() == [("knees_forward",)]
    conn.close()
    assert (data / "reps.jsonl").is_file()
    assert machine.state["enabled"] == [] and not [u for u in machine.state["active"] if u.startswith("hinge")]
    assert "hinge-station" in machine.state["users"]  # it still owns the kept data
    assert ran(machine, "systemctl", "disable", "--now", "hinge-station.service")

    proc = machine.install("--uninstall", "--purge-data")
    assert proc.returncode == 0, proc.stderr
    assert not data.exists() and "hinge-station" not in machine.state["users"]


def test_uninstall_retires_the_station_after_stopping_it_and_goes_on_if_it_cannot(machine):
    """`--uninstall` runs `station retire` as the service user once the service has stopped (a running
    station would announce itself again) and while its config is still there; a broker out of reach
    is said, and the uninstall still removes everything."""
    assert machine.install().returncode == 0
    proc = machine.install("--uninstall")
    assert proc.returncode == 0, proc.stderr
    commands = machine.commands()
    retired = [i for i, c in enumerate(commands) if c[0] == "venv-station" and c[-1] == "retire"]
    stopped = commands.index(["systemctl", "disable", "--now", "hinge-station.service"])
    assert len(retired) == 1 and retired[0] > stopped
    assert ["runuser", "-u", "hinge-station"] == commands[retired[0] - 1][:3]  # as the service user
    assert "station retire did not run through" not in proc.stderr

    assert machine.install().returncode == 0
    proc = machine.install("--uninstall", FAKE_RETIRE_FAILS="1")
    assert proc.returncode == 0, proc.stderr
    assert "station retire did not run through" in proc.stderr and "Connection refused" in proc.stderr
    assert not (machine.root / "etc/hinge-station").exists() and not (machine.root / "opt/hinge-station").exists()


def test_headless_mode_is_chosen_kept_and_switched_back(machine):
    assert machine.install("--headless").returncode == 0
    assert machine.state["enabled"] == ["hinge-station-log.service", "hinge-station-backup.timer"]
    assert machine.install().returncode == 0  # a plain re-run keeps the chosen mode
    assert "hinge-station.service" not in machine.state["enabled"]
    assert machine.install("--coach").returncode == 0
    assert ran(machine, "systemctl", "disable", "--now", "hinge-station-log.service")
    assert set(machine.state["enabled"]) == {"hinge-station.service", "hinge-station-backup.timer"}


def test_a_service_that_does_not_come_up_fails_the_install_but_keeps_the_token(machine):
    proc = machine.install(FAKE_START_FAILS="hinge-station.service")
    assert proc.returncode == 1
    assert "did not start: hinge-station.service" in proc.stderr and "journalctl -u hinge-station" in proc.stderr
    token = load_settings(machine.root / "etc/hinge-station/config.toml").web.token.get_secret_value()
    assert token in proc.stdout  # shown even so: it is never shown again
    assert "hinge-station-backup.timer" in machine.state["active"]


@pytest.mark.parametrize("how", [("--no-start",), ()], ids=["flag", "detected"])
def test_without_running_systemd_units_are_enabled_and_nothing_started(machine, how):
    """An image build or a chroot (deploy/test-arm64.sh): systemctl can enable units there but not
    start or reload them, so the install enables and starts nothing; a later boot starts them."""
    proc = machine.install(*how, FAKE_SYSTEM_STATE="running" if how else "offline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = machine.state
    assert state["enabled"] == ["hinge-station.service", "hinge-station-backup.timer"]
    assert state["active"] == []
    for verb in ("start", "restart", "daemon-reload"):
        assert not ran(machine, "systemctl", verb), verb
    for unit in UNITS:
        assert (machine.root / "etc/systemd/system" / unit).is_file()
    assert "start at boot" in proc.stdout
    if not how:
        assert "systemd is not running here" in proc.stdout

    switched = machine.install("--headless", *how, FAKE_SYSTEM_STATE="running" if how else "offline")
    assert switched.returncode == 0, switched.stderr
    assert ran(machine, "systemctl", "disable", "hinge-station.service")  # no --now: nothing to stop
    assert machine.state["enabled"] == ["hinge-station-backup.timer", "hinge-station-log.service"]
    assert machine.state["active"] == []

    hub = machine.install("--hub", *how, FAKE_SYSTEM_STATE="running" if how else "offline")
    assert hub.returncode == 0, hub.stderr
    assert "hinge-hub.service" in machine.state["enabled"] and machine.state["active"] == []
    assert not ran(machine, "systemctl", "start") and not ran(machine, "systemctl", "restart")


def test_missing_quantize_command_falls_back_to_float16(machine):
    proc = machine.install(FAKE_HAS_QUANTIZE="0")
    assert proc.returncode == 0, proc.stderr
    assert "float16" in proc.stderr
    assert not [c for c in ran(machine, "runuser") if "quantize" in c]


@pytest.mark.parametrize("os_release, env, message", [
    ('ID=ubuntu\nVERSION_CODENAME=jammy\n', {}, "unsupported OS 'ubuntu'"),
    ('ID=debian\nVERSION_CODENAME=bullseye\n', {}, "unsupported release 'bullseye'"),
    (PI_OS, {"FAKE_ARCH": "armhf"}, "unsupported architecture 'armhf'"),
    (PI_OS, {"FAKE_ARCH": "amd64"}, "unsupported architecture 'amd64'"),
    (PI_OS, {"FAKE_PYTHON_VERSION": "3.9"}, "unsupported Python 3.9"),
])
def test_unsupported_platform_fails_early_and_clearly(tmp_path, os_release, env, message):
    machine = Machine(tmp_path, os_release=os_release)
    before = machine.tree()
    proc = machine.install(**env)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert machine.tree() == before and machine.changes() == []


def test_refuses_to_run_without_root_or_root_dir():
    if os.geteuid() == 0:
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(INSTALL)],
                              capture_output=True, text=True)
    else:
        proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True)
    assert proc.returncode != 0 and "run as root" in proc.stderr


def test_help_lists_every_option():
    proc = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for option in ["--dry-run", "--headless", "--coach", "--hub", "--no-quantize", "--uninstall", "--purge-data",
                   "--root", "--no-start"]:
        assert option in proc.stdout
    bad = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown option '--frobnicate'" in bad.stderr


# --- the hub (install.sh --hub) -----------------------------------------------------------------


def test_hub_unit_runs_the_hub_with_no_device_at_all():
    hub = (DEPLOY / "systemd/hinge-hub.service").read_text()
    assert "ExecStart=/opt/hinge-station/venv/bin/station hub" in hub
    assert "DeviceAllow" not in hub and "PrivateDevices=yes" in hub and "AF_NETLINK" not in hub


def test_hub_installs_on_an_amd64_debian_box_without_camera_models_or_gpio(tmp_path):
    machine = Machine(tmp_path, groups=())  # a PC: no video, gpio or audio group
    proc = machine.install("--hub", FAKE_ARCH="amd64", FAKE_NUMPY="")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = machine.state
    assert set(state["packages"]) == {"python3-venv", "sqlite3", "logrotate"}
    assert state["enabled"] == ["hinge-hub.service"] and "hinge-hub.service" in state["active"]
    assert ["useradd", "--system", "--user-group", "--home-dir", "/var/lib/hinge-station", "--no-create-home",
            "--shell", "/usr/sbin/nologin", "hinge-station"] in machine.commands()
    (pip,) = ran(machine, "venv-python", "-m", "pip", "install")
    assert pip[-1].endswith("[hub]")  # psycopg for PostgreSQL; no quantizer, no GPIO library
    assert not [c for c in ran(machine, "runuser") if "fetch" in c or "doctor" in c]
    assert not (machine.root / "var/lib/hinge-station/models").exists()
    assert (machine.root / "etc/systemd/system/hinge-hub.service").read_bytes() == \
        (DEPLOY / "systemd/hinge-hub.service").read_bytes()
    assert "[mqtt] host" in proc.stdout and "hinge-hub" in proc.stdout
    token = load_settings(machine.root / "etc/hinge-station/config.toml").web.token.get_secret_value()
    assert proc.stdout.count(token) == 1

    before = machine.tree()
    again = machine.install("--hub", FAKE_ARCH="amd64", FAKE_NUMPY="")
    assert again.returncode == 0, again.stderr
    assert machine.tree() == before
    assert machine.changes() == [], machine.changes()


def test_hub_beside_a_station_leaves_the_station_running(machine):
    assert machine.install().returncode == 0
    proc = machine.install("--hub")
    assert proc.returncode == 0, proc.stderr
    assert set(machine.state["enabled"]) == {"hinge-station.service", "hinge-station-backup.timer", "hinge-hub.service"}
    assert not ran(machine, "systemctl", "disable")
    assert machine.install("--uninstall").returncode == 0
    assert not (machine.root / "etc/systemd/system/hinge-hub.service").exists()
    assert "hinge-hub.service" not in machine.state["enabled"]
