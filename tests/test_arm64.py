"""arm64: the station installed and run in an emulated Debian arm64 root against this machine.

The end-to-end run (deploy/test-arm64.sh: debootstrap, install.sh, the pose engine under qemu) takes
minutes and needs root, debootstrap and qemu-user-static, so it runs only when asked:

    sudo HINGE_ARM64=1 .venv/bin/python -m pytest tests/test_arm64.py -q

The comparison it ends with (`station models compare`) is checked here on plain traces in the
default suite: it must pass a machine that matches and fail one that does not.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest

from device.commands.crosscheck import TRACE_FORMAT, compare_traces, event_record
from device.pose.tflite import interpreter_options
from device.analysis.vocabulary import Fault, FaultEvent, FaultRaised, Framing, FramingChanged

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "test-arm64.sh"


def trace(machine: str, points, shifted=None, events=None) -> dict:
    """A trace of one clip whose frames hold the given (33, 2) landmark arrays."""
    def clip(frames):
        return {"clip": "a.mp4", "first_frame_sha256": "f", "profile": "hinge", "landmarks": frames,
                "found": [True] * len(frames), "detector_ran": [False] * len(frames),
                "events": events if events is not None else [{"kind": "RepStarted", "time": 0.5, "rep_index": 1}]}

    out = {"format": TRACE_FORMAT, "cpu": {"machine": machine, "qemu_cpu": "", "fp16_arithmetic": False,
                                           "dot_product": False},
           "landmark_variant": "float16", "models": {"detector": "d", "landmark": "l"},
           "probe": {"landmark_xnnpack": [[0.0, 1.0]]}, "clips": [clip(points)]}
    if shifted is not None:
        out["shifted_clips"] = [clip(shifted)]
    return out


def frames(offset: float, n: int = 4) -> list:
    return [[[100.0 + i + offset, 200.0 + offset] for i in range(33)] for _ in range(n)]


def test_a_machine_within_the_one_pixel_noise_floor_passes():
    # The shifted run moved every point by 1 px (the picture's own move) plus 3 px of model noise.
    reference = trace("x86_64", frames(0), shifted=frames(1 + 3))
    result = compare_traces(reference, trace("aarch64", frames(2)))
    row = result["clips"][0]
    assert row["noise_p99_px"] == pytest.approx(3 * 2 ** 0.5, abs=0.01)
    assert row["p99_px"] == pytest.approx(2 * 2 ** 0.5, abs=0.01) and row["points"] == 4 * 33
    assert result["passed"] and row["same_events"]


def test_a_machine_beyond_the_noise_floor_or_with_other_events_fails():
    reference = trace("x86_64", frames(0), shifted=frames(1 + 3))
    assert not compare_traces(reference, trace("aarch64", frames(5)))["passed"]
    other_events = trace("aarch64", frames(0), events=[{"kind": "RepStarted", "time": 0.533, "rep_index": 1}])
    result = compare_traces(reference, other_events)
    assert not result["passed"] and not result["clips"][0]["same_events"]
    lost = trace("aarch64", frames(0))
    lost["clips"][0]["found"][2] = False
    assert not compare_traces(reference, lost)["passed"]
    other_model = copy.deepcopy(trace("aarch64", frames(0)))
    other_model["models"]["landmark"] = "other"
    assert not compare_traces(reference, other_model)["passed"]


def test_events_are_compared_without_their_measured_values():
    fault = FaultEvent(Fault.ROUNDED_BACK, "long spine", 1.2, value=31.4159, threshold=25.0, rep_index=1, margin=6.4,
                       quantity="back_bend_deg")
    record = event_record(FaultRaised(1.2, fault))
    assert record == {"kind": "FaultRaised", "time": 1.2,
                      "event": {"fault": "rounded_back", "cue": "long spine", "time": 1.2, "rep_index": 1,
                                "borderline": False}}
    assert event_record(FramingChanged(0.1, Framing.OK, "")) == {"kind": "FramingChanged", "time": 0.1,
                                                                "framing": "ok", "cue": ""}


def test_the_interpreter_numerics_are_pinned_and_older_runtimes_get_what_they_know():
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    assert interpreter_options(Interpreter, 2) == {
        "num_threads": 2, "experimental_default_delegate_latest_features": False,
        "experimental_op_resolver_type": OpResolverType.AUTO}

    class OldInterpreter:  # tflite_runtime before these options existed
        def __init__(self, model_path=None, num_threads=None):
            pass

    assert interpreter_options(OldInterpreter, 3) == {"num_threads": 3}


@pytest.mark.skipif(os.environ.get("HINGE_ARM64") != "1",
                    reason="emulated arm64 run (minutes, needs root, debootstrap, qemu-user-static): "
                           "sudo HINGE_ARM64=1 .venv/bin/python -m pytest tests/test_arm64.py")
def test_the_station_installs_and_matches_this_machine_on_arm64(tmp_path):
    summary = tmp_path / "arm64.json"
    proc = subprocess.run(["bash", str(SCRIPT), "--json", str(summary)], capture_output=True, text=True, timeout=3 * 3600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "Not starting: no running systemd" in proc.stdout  # install.sh ran for real, in its chroot mode
    result = json.loads(summary.read_text())
    assert result["passed"]
    cpus = {row["qemu_cpu"] for row in result["overall"]}
    assert cpus == {"cortex-a72", "cortex-a76"}
    assert all(row["machine"] == "aarch64" and row["same_models"] and row["points"] > 0 for row in result["overall"])
    assert {row["clip"] for row in result["clips"]} == {"formfit_deadlift_side_good.mp4", "bichraix_deadlift_side_good014.mp4"}
    for speeds in result["variant_speed_vs_float16"]:
        assert speeds["float16"] == 1.0 and len(speeds) > 3  # machine, qemu_cpu, float16 and the variants


def test_the_opt_in_variable_is_not_refused_as_a_misspelled_setting():
    from device.config import unknown_environment

    # pytest passes HINGE_ARM64=1 on to the station commands the script runs.
    assert unknown_environment({"HINGE_ARM64": "1"}) == []
    assert unknown_environment({"HINGE_ARM46": "1"}) == ["HINGE_ARM46"]


def test_trace_and_compare_run_on_this_machine(clips_dir, models_dir, tmp_path, capsys):
    """The two commands the script runs, on a real clip with the real models: a trace compared
    with itself is identical to the bit, and the one-pixel noise floor is there and not zero."""
    from device.commands.cli import main

    trace_path, summary = tmp_path / "trace.json", tmp_path / "summary.json"
    clip = clips_dir / "bichraix_deadlift_side_good014.mp4"
    assert main(["models", "trace", str(clip), "--frames", "4", "--noise-floor", "--variant", "float16",
                 "--models-dir", str(models_dir), "--out", str(trace_path), "--json", str(tmp_path / "t.json")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["clips"] == [
        {"clip": clip.name, "frames": 4, "found": 4, "events": len(json.loads(trace_path.read_text())["clips"][0]["events"])}]
    trace = json.loads(trace_path.read_text())
    assert trace["landmark_variant"] == "float16" and trace["cpu"]["machine"]
    assert len(trace["clips"][0]["landmarks"]) == 4 and all(trace["clips"][0]["found"])
    assert set(trace["probe"]) == {"detector_xnnpack", "detector_builtin", "landmark_xnnpack", "landmark_builtin"}

    assert main(["models", "compare", str(trace_path), str(trace_path), "--json", str(summary)]) == 0
    result = json.loads(summary.read_text())
    row = result["clips"][0]
    assert result["passed"] and row["max_px"] == 0 and row["same_frame_pixels"] and row["same_events"]
    assert row["noise_p99_px"] > 0  # moving the picture by a pixel does move the landmarks
    assert "PASSED" in capsys.readouterr().out
