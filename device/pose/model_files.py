"""What the pose engine loads at run time: the model manifest and the checks that a models directory holds exactly the files it names.

The shipped models are pinned by sha256 in manifest.toml. Quantized variants are produced locally by
`station models quantize`, which records each file's sha256 and accuracy in quantized.json; the
runtime trusts a variant only if its bytes still match that record.
"""
from __future__ import annotations

import importlib.resources
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on older Pi OS images
    import tomli as tomllib

from device.errors import ModelError
from device.fileio import sha256_of

# The manifest is data that ships with the models/ tooling package; the runtime only reads it.
MANIFEST_PATH = Path(str(importlib.resources.files("models").joinpath("manifest.toml")))
QUANTIZED_RECORD = "quantized.json"
SHIPPED_VARIANT = "float16"
FETCH_HINT = "run `station models fetch` (it downloads the mediapipe wheel from PyPI and extracts the models)"
QUANTIZE_HINT = "run `station models quantize`, or set models.landmark_variant = 'float16'"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    wheel_path: str
    sha256: str
    size: int
    role: str
    licence: str


@dataclass(frozen=True)
class Manifest:
    package: str
    version: str
    models: dict[str, ModelSpec]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def by_role(self, role: str) -> ModelSpec:
        return next(m for m in self.models.values() if m.role == role)


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    data = tomllib.loads(path.read_text())
    models = {
        name: ModelSpec(
            name=name,
            file=m["file"],
            wheel_path=m["wheel_path"],
            sha256=m["sha256"],
            size=int(m["size"]),
            role=m["role"],
            licence=m["licence"],
        )
        for name, m in data["models"].items()
    }
    return Manifest(package=data["source"]["package"], version=data["source"]["version"], models=models)


def check_file(path: Path, sha256: str, size: Optional[int], hint: str) -> None:
    """Raise ModelError naming the file and the fix if it is missing, truncated or altered."""
    if not path.is_file():
        raise ModelError(f"model file {path} is missing: {hint}")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ModelError(
            f"model file {path} is {actual_size} bytes, expected {size} (truncated or partial download): {hint}"
        )
    actual = sha256_of(path)
    if actual != sha256:
        raise ModelError(f"model file {path} has sha256 {actual[:12]}…, expected {sha256[:12]}… (corrupt): {hint}")


def file_is_intact(path: Path, spec: ModelSpec) -> bool:
    try:
        check_file(path, spec.sha256, spec.size, FETCH_HINT)
    except ModelError:
        return False
    return True


def read_quantized_record(models_dir: Path) -> Optional[dict]:
    path = models_dir / QUANTIZED_RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelError(f"{path} is not valid JSON ({err}): {QUANTIZE_HINT}") from None


@dataclass(frozen=True)
class ResolvedModels:
    detector: Path
    landmark: Path
    landmark_variant: str


def resolve_models(models_dir: Path, landmark_variant: str = "auto", manifest: Optional[Manifest] = None) -> ResolvedModels:
    """Pick and verify the detector and landmark files the pose engine should load."""
    manifest = manifest or load_manifest()
    detector = manifest.by_role("detector")
    shipped = manifest.by_role("landmark")
    detector_path = models_dir / detector.file
    check_file(detector_path, detector.sha256, detector.size, FETCH_HINT)
    # The shipped landmark model is checked even when a variant is chosen: it is the fallback.
    shipped_path = models_dir / shipped.file
    check_file(shipped_path, shipped.sha256, shipped.size, FETCH_HINT)

    record = read_quantized_record(models_dir)
    if landmark_variant == "auto":
        chosen = record.get("selected") if record else None
        landmark_variant = chosen or SHIPPED_VARIANT

    if landmark_variant == SHIPPED_VARIANT:
        return ResolvedModels(detector_path, shipped_path, SHIPPED_VARIANT)

    variants = {v["name"]: v for v in (record or {}).get("variants", []) if v.get("file")}
    if landmark_variant not in variants:
        known = ", ".join([SHIPPED_VARIANT, *variants]) or SHIPPED_VARIANT
        raise ModelError(f"unknown landmark variant {landmark_variant!r} in {models_dir} (known: {known}): {QUANTIZE_HINT}")
    entry = variants[landmark_variant]
    path = models_dir / entry["file"]
    check_file(path, entry["sha256"], entry.get("size"), QUANTIZE_HINT)
    return ResolvedModels(detector_path, path, landmark_variant)
