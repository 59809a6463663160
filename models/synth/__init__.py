"""The rendered-athlete bench: a parametric body (anny) posed with exact joint angles in every drill
and fault, rendered as the station's camera would see it, with the truth of every frame; and a report
of the station's own pose engine and analysis on those clips (`station synth render` / `report`).

Offline tooling: nothing the station runs imports it (tests/test_layout.py), and only body.py
imports torch and anny (the [synth] extra).
"""
