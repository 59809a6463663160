"""A fault's evidence in the coach's words (web/evidence.py): the quantity, its unit and which way
the movement asks, for every fault and quantity the rules decide by."""
from __future__ import annotations

import re

import pytest

from device.analysis.vocabulary import Fault
from web.evidence import UNITS, WORDS, evidence_line, past_line, quantity_of


def test_a_squat_decided_by_the_knees_reads_as_the_knees_bend_in_degrees():
    assert evidence_line("squatting_the_hinge", "knee_flexion_deg", 105.46, 85.0) == \
        "knees bent 105° — a hinge keeps them under 85°"


def test_the_same_fault_reads_by_what_decided_it():
    """A squat is decided by the thigh, the knees or the hinge ratio: each says its own quantity."""
    thigh = evidence_line("squatting_the_hinge", "thigh_deg", 88.0, 85.0)
    ratio = evidence_line("squatting_the_hinge", "hinge_ratio", 1.1, 1.3)
    assert thigh.startswith("thighs 88° off vertical") and thigh.endswith("under 85°")
    assert ratio == "hips bent only 1.1× as much as the knees — a hinge bends them at least 1.3×"


def test_a_minimum_reads_as_at_least_and_a_maximum_as_under():
    """The direction comes from the rule: a tempo and soft knees are minimums, a bend is a maximum."""
    assert evidence_line("too_fast", "lowering_s", 0.42, 0.5) == "lowered in 0.4 s — this drill asks at least 0.5 s"
    assert "at least 8°" in evidence_line("locked_knees", "knee_flexion_deg", 3.0, 8.0)
    assert "under 25°" in evidence_line("rounded_back", "back_bend_deg", 31.0, 25.0)


@pytest.mark.parametrize("fault", [f.value for f in Fault])
def test_every_fault_of_the_vocabulary_has_words_with_a_unit(fault):
    quantities = [q for (f, q) in WORDS if f == fault]
    assert quantities, f"{fault} has no words"
    for q in quantities:
        line = evidence_line(fault, q, 12.0, 10.0)
        assert " — " in line and "12.00" not in line  # words and a unit, never the bare number
        assert q in UNITS


def test_a_fault_logged_before_its_quantity_was_kept_reads_by_its_only_quantity():
    """Inside: a fault with one quantity, or a squat under its limit (only the ratio is a minimum).
    Outside: a squat over its limit could be the thigh or the knees, so plain numbers, no guessed unit."""
    assert quantity_of("rounded_back", None, 31.0, 25.0) == "back_bend_deg"
    assert quantity_of("squatting_the_hinge", None, 1.1, 1.3) == "hinge_ratio"
    assert quantity_of("squatting_the_hinge", None, 105.0, 85.0) is None
    assert evidence_line("squatting_the_hinge", None, 105.0, 85.0) == "measured 105.00 — the limit is 85.00"
    assert not re.search("°|×", evidence_line("squatting_the_hinge", "made_up", 105.0, 85.0))


def test_how_far_past_is_said_in_the_unit_against_the_noise_or_says_the_noise_was_unknown():
    assert past_line("squatting_the_hinge", "knee_flexion_deg", 105.46, 85.0, 20.46, 5.69) == \
        "20° past the limit; the reading's own noise is 6°"
    assert past_line("too_fast", "lowering_s", 0.3, 0.5, 0.2, None).endswith("noise was not measured yet")
    assert evidence_line("rounded_back", "back_bend_deg", None, 25.0) == "" and past_line("x", None, 1, 1, None, 1) == ""
