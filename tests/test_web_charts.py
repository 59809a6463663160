"""Per-rep charts: one scale for the whole session, points inside the plot, faults marked at the
moment they were raised, gaps in a trace skipped rather than drawn as zeros."""
from __future__ import annotations

import re

from web.charts import LEFT, TOP, WIDTH, HEIGHT, BOTTOM, RIGHT, Scale, rep_chart
from web.schemas import RepOut


def rep(index, duration, trace, faults=()):
    return RepOut(
        id=index, session_id=1, rep_index=index, duration_s=duration, peak_hip_flexion_deg=95.0,
        knee_flexion_at_bottom_deg=20.0, hinge_ratio=4.75, lockout_reached=True,
        faults=[{"id": i, "name": name, "cue": "cue <b>", "at": 100.0 + t, "t_rel_s": t, "value": 1.0, "threshold": 0.5}
                for i, (name, t) in enumerate(faults)],
        started_at=100.0, bottom_at=100.0 + duration / 2, ended_at=100.0 + duration, lowering_s=duration / 2,
        rising_s=duration / 2, trunk_angle_at_bottom_deg=60.0, hip_shift_at_bottom=0.3, side="left", movement="hinge",
        corrections=[], counted=True, corrected_faults=[n for n, _ in faults], trace=trace, judged=True,
        verdict="faults" if faults else "clean",
    )


def points(attr: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in attr.split())]


def test_reps_share_one_scale_and_stay_inside_the_plot():
    short = rep(1, 2.0, [[0.0, 0.0, 5.0], [1.0, 95.0, 20.0], [2.0, 2.0, 5.0]])
    squat = rep(2, 4.2, [[0.0, 0.0, 5.0], [2.0, 125.0, 110.0], [4.2, 1.0, 4.0]], faults=[("squatting_the_hinge", 1.9)])
    scale = Scale.for_reps([short, squat])
    assert scale.t_max == 5.0 and scale.deg_max == 150.0  # rounded up to whole seconds and 30° steps
    a, b = rep_chart(short, scale), rep_chart(squat, scale)
    for chart in (a, b):
        for x, y in points(chart.hip) + points(chart.knee):
            assert LEFT <= x <= WIDTH - RIGHT and TOP <= y <= HEIGHT - BOTTOM
    assert points(a.hip)[-1][0] < points(b.hip)[-1][0]  # the shorter rep draws shorter on the shared time axis
    assert min(y for _, y in points(b.knee)) < min(y for _, y in points(a.knee))  # the squat's knees bend further
    [mark] = b.faults
    assert abs(mark.x - (LEFT + (WIDTH - RIGHT - LEFT) * 1.9 / 5.0)) < 0.1


def test_svg_marks_faults_escapes_text_and_skips_gaps():
    gappy = rep(3, 3.0, [[0.0, 1.0, 5.0], [1.0, None, None], [2.0, 90.0, 20.0], [3.0, 2.0, 5.0]],
                faults=[("rounded_back", 1.5), ("head_not_neutral", 1.8)])
    svg = str(rep_chart(gappy, Scale.for_reps([gappy])).svg(3))
    assert len(points(re.search(r'class="hip" points="([^"]+)"', svg).group(1))) == 3
    assert re.findall(r'data-fault="([^"]+)"', svg) == ["rounded_back", "head_not_neutral"]
    assert "cue <b>" not in svg and "cue &lt;b&gt;" in svg and "style=" not in svg
