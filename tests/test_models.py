"""Model fetching and verification against the real mediapipe wheel from PyPI."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from device.errors import ModelError
from models.fetch import fetch_models
from device.pose.model_files import load_manifest, resolve_models, sha256_of


def test_manifest_names_both_models_with_hashes():
    manifest = load_manifest()
    assert manifest.requirement == "mediapipe==0.10.14"
    assert {m.role for m in manifest.models.values()} == {"detector", "landmark"}
    for spec in manifest.models.values():
        assert len(spec.sha256) == 64 and spec.size > 1_000_000 and spec.licence == "Apache-2.0"


def test_fetched_files_match_the_manifest(models_dir):
    for spec in load_manifest().models.values():
        assert sha256_of(models_dir / spec.file) == spec.sha256


def test_fetch_is_idempotent_and_repairs_corrupt_files(models_dir, tmp_path, monkeypatch):
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    manifest = load_manifest()
    detector = target / manifest.by_role("detector").file
    landmark = target / manifest.by_role("landmark").file

    calls = []
    import models.fetch as fetch

    real = fetch.download_wheel
    monkeypatch.setattr(fetch, "download_wheel", lambda *a: calls.append(a) or real(*a))
    before = landmark.stat().st_mtime_ns
    assert {r.action for r in fetch_models(target)} == {"present"}
    assert calls == [] and landmark.stat().st_mtime_ns == before  # nothing downloaded, nothing touched

    with landmark.open("r+b") as fh:  # corrupt one byte, same size
        fh.seek(1000)
        fh.write(b"\x00" if fh.read(1) != b"\x00" else b"\x01")
    detector.write_bytes(detector.read_bytes()[:1000])  # partial download
    actions = {r.name: r.action for r in fetch_models(target)}
    assert actions == {"pose_detector": "replaced", "pose_landmark_full": "replaced"}
    assert len(calls) == 1  # one wheel download serves both files
    resolve_models(target, "float16")  # verifies both hashes again


@pytest.mark.parametrize("damage", ["truncate", "wrong_hash", "missing"])
def test_bad_model_file_names_the_file_and_the_fetch_command(models_dir, tmp_path, damage):
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    path = target / load_manifest().by_role("landmark").file
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: 4096])
    elif damage == "wrong_hash":
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.unlink()
    with pytest.raises(ModelError) as info:
        resolve_models(target, "float16")
    message = str(info.value)
    assert str(path) in message and "station models fetch" in message


def test_replay_cli_without_models_explains_and_exits_nonzero(tmp_path, clips_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "device", "replay", str(clips_dir / "jeffchen_deadlift_side_good_1rep.mp4"),
         "--models-dir", str(tmp_path / "empty")],
        capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "station models fetch" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_variant_is_refused(models_dir):
    with pytest.raises(ModelError, match="unknown landmark variant 'int8_nope'"):
        resolve_models(models_dir, "int8_nope")
