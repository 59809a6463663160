"""`station bench` end to end on a short real clip: it runs, prints its tables and writes the same
names as JSON with positive numbers. No timing is asserted."""
from __future__ import annotations

import json
import subprocess
import sys

SHORT_CLIP = "jeffchen_deadlift_side_bad_rounded_head_down_1rep.mp4"  # 29 frames


def test_bench_writes_models_and_pipeline_sections(tmp_path, clips_dir, quantized_models_dir):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "device.cli", "bench", str(clips_dir / SHORT_CLIP), "--json", str(out),
         "--models-dir", str(quantized_models_dir)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    record = json.loads((quantized_models_dir / "quantized.json").read_text())

    models = {(row["model"], row["variant"]): row for row in result["models"]}
    expected = {("detector", "float32"), ("landmark", "float16")} | {("landmark", v["name"]) for v in record["variants"]}
    assert set(models) == expected
    for row in models.values():
        assert row["ms_per_frame"] > 0 and row["inputs"] > 0
    assert models[("landmark", "float16")]["speedup"] == 1.0
    assert sum(bool(row["selected"]) for row in result["models"]) == 1
    assert result["selected_variant"] == (record["selected"] or "float16")

    pipeline = {row["variant"]: row for row in result["pipeline"]}
    assert set(pipeline) == {result["selected_variant"], "float16"}
    for row in pipeline.values():
        assert row["frames"] == 29 and row["fps"] > 0 and row["ms_per_frame"] > 0
        assert row["pipeline_per_bare_landmark"] > 0
        assert 0 < row["detector_run_pct"] <= 100  # the detector runs at least on the first frame

    for name in ("ms_per_frame", "speedup", "pipeline_per_bare_landmark", "detector_run_pct"):
        assert name in proc.stdout  # the printed tables use the JSON's names
