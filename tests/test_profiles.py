"""Drill profiles: all shipped ones load, inherit from the plain hinge, and bad files name the bad key."""
from __future__ import annotations

from pathlib import Path

import pytest

from device.config import load_settings
from device.errors import ConfigError
from device.analysis.vocabulary import Fault
from device.analysis.profiles import PROFILES_DIR, list_profiles, load_profile

DRILLS = {
    "hinge", "wall_tap_hinge", "dowel_hinge", "cable_pulled_hinge", "sternum_loaded_hinge", "hands_behind_head_hinge",
    "band_resisted_hinge", "pull_through", "romanian_deadlift", "kettlebell_deadlift",
}


def test_every_drill_is_shipped_and_valid():
    assert DRILLS <= set(list_profiles())
    for name in list_profiles():
        profile = load_profile(name)
        assert profile.name == name and profile.title
        for fault in Fault:
            assert profile.faults.cue(fault)
            assert profile.faults.hold(fault) >= 0


def test_the_settings_default_profile_exists():
    assert load_profile(load_settings(None, {}).analysis.profile).name == "hinge"


def test_drills_inherit_the_plain_hinge_and_override_what_differs():
    base, rdl = load_profile("hinge"), load_profile("romanian_deadlift")
    assert rdl.reps.depth_deg == 60 != base.reps.depth_deg
    assert rdl.faults.squatting_the_hinge.max_knee_deg == 45 != base.faults.squatting_the_hinge.max_knee_deg
    assert rdl.faults.enabled(Fault.TOO_FAST) and not base.faults.enabled(Fault.TOO_FAST)
    assert rdl.kinematics == base.kinematics and rdl.movement == base.movement


def test_every_number_in_the_shipped_profiles_has_a_reason():
    """Each numeric or on/off setting sits in a block of lines (up to a blank line or a table header)
    that holds a comment saying why."""
    for path in PROFILES_DIR.glob("*.toml"):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "=" not in line or line.lstrip().startswith("#"):
                continue
            value = line.split("=", 1)[1].strip()
            if value.startswith('"'):
                continue  # names, titles, cues
            block = []
            for above in reversed(lines[:i]):
                if not above.strip() or above.startswith("["):
                    break
                block.append(above)
            assert any(b.lstrip().startswith("#") for b in block), f"{path.name}:{i + 1} has no reason: {line}"


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.toml").write_text(text)
    return tmp_path


def test_unknown_key_is_an_error_naming_it(tmp_path):
    write(tmp_path, "typo", 'base = "hinge"\ntitle = "Typo"\n[faults.too_fast]\nmin_lowring_s = 1.0\n')
    with pytest.raises(ConfigError) as err:
        load_profile("typo", tmp_path)
    assert "faults.too_fast.min_lowring_s" in str(err.value) and "typo.toml" in str(err.value)


def test_bad_value_is_an_error_naming_the_key_and_value(tmp_path):
    write(tmp_path, "bad", 'base = "hinge"\ntitle = "Bad"\n[reps]\ndepth_deg = "deep"\n')
    with pytest.raises(ConfigError) as err:
        load_profile("bad", tmp_path)
    assert "reps.depth_deg" in str(err.value) and "deep" in str(err.value)


@pytest.mark.parametrize("section,key,value", [
    ("faults.squatting_the_hinge", "max_thigh_deg", "-5"), ("faults.squatting_the_hinge", "max_knee_deg", "inf"),
    ("faults.head_not_neutral", "max_dropped_deg", "nan"), ("faults.too_fast", "min_lowering_s", "-1.0"),
    ("faults.load_away_from_body", "max_forward", "0"), ("movement", "squat_min_knee_deg", "400"),
    ("kinematics", "noise_window_s", "inf"), ("faults", "clear_margin_sigmas", "nan"),
])
def test_non_finite_or_out_of_range_numbers_are_refused_naming_the_key(tmp_path, section, key, value):
    write(tmp_path, "odd", f'base = "hinge"\ntitle = "Odd"\n[{section}]\n{key} = {value}\n')
    with pytest.raises(ConfigError) as err:
        load_profile("odd", tmp_path)
    assert f"{section}.{key}" in str(err.value) and "odd.toml" in str(err.value)


def test_non_finite_or_unknown_settings_from_the_environment_are_refused(monkeypatch):
    from device.config import load_settings

    monkeypatch.setenv("HINGE_SOURCE__FPS", "inf")
    with pytest.raises(ConfigError, match="source.fps"):
        load_settings(None, {})
    monkeypatch.delenv("HINGE_SOURCE__FPS")
    monkeypatch.setenv("HINGE_WEB_TOKEN", "x" * 20)  # one underscore: names no setting
    with pytest.raises(ConfigError, match="HINGE_WEB_TOKEN"):
        load_settings(None, {})
    monkeypatch.delenv("HINGE_WEB_TOKEN")
    monkeypatch.setenv("HINGE_WEB__TOKEN", "x" * 20)
    monkeypatch.setenv("HINGE_SHARED_DIR", "/tmp")  # the labelled clips' folder: not a setting, not an error
    monkeypatch.setenv("HINGE_TEST_MODELS_DIR", "/tmp")  # where the tests keep their models: nor is this
    assert load_settings(None, {}).web.token.get_secret_value() == "x" * 20


def test_inconsistent_rep_thresholds_are_refused(tmp_path):
    write(tmp_path, "shallow", 'base = "hinge"\ntitle = "Shallow"\n[reps]\ndepth_deg = 30\n')
    with pytest.raises(ConfigError, match="start_deg < depth_deg"):
        load_profile("shallow", tmp_path)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        load_profile("zercher_squat")
    assert "zercher_squat" in str(err.value) and "romanian_deadlift" in str(err.value)


def test_base_cycle_is_refused(tmp_path):
    write(tmp_path, "a", 'base = "b"\ntitle = "A"\n')
    write(tmp_path, "b", 'base = "a"\ntitle = "B"\n')
    with pytest.raises(ConfigError, match="a -> b -> a"):
        load_profile("a", tmp_path)


def test_malformed_toml_is_a_clear_error(tmp_path):
    write(tmp_path, "broken", 'base = "hinge"\ntitle = \n')
    with pytest.raises(ConfigError, match="cannot read profile"):
        load_profile("broken", tmp_path)


def test_a_profiles_dir_adds_and_shadows_drills(tmp_path):
    write(tmp_path, "gym_rdl", 'base = "romanian_deadlift"\ntitle = "Our RDL"\n[faults.too_fast]\n# slower here\nmin_lowering_s = 2.5\n')
    write(tmp_path, "hinge", (PROFILES_DIR / "hinge.toml").read_text().replace('title = "Hip hinge"', 'title = "House hinge"'))
    assert {"gym_rdl", "hinge", "dowel_hinge"} <= set(list_profiles(tmp_path))
    rdl = load_profile("gym_rdl", tmp_path)
    assert rdl.faults.too_fast.min_lowering_s == 2.5 and rdl.reps.depth_deg == 60
    assert load_profile("hinge", tmp_path).title == "House hinge"
    assert load_profile("hinge").title == "Hip hinge"
