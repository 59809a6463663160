"""Spoken cues: espeak-ng renders each drill's phrases to WAV once; the voice says a fault's cue once
per fault per rep, never over itself and never before the buzzer; no espeak-ng or no audio device
leaves everything else working."""
from __future__ import annotations

import os
import shutil
import time
import wave

import numpy as np
import pytest
from support.pipeline import RecordedPoses, station_settings

from device.analysis.profiles import list_profiles, load_profile
from device.station import voice as voice_module
from device.station.voice import (
    MAX_PHRASE_S, PRAISE, AlsaSpeaker, PhraseBank, RecordingSpeaker, Voice, VoiceError, profile_phrases, wav_seconds,
)


def espeak_or_skip() -> None:
    if shutil.which("espeak-ng") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("espeak-ng is not installed; CI must install it (apt-get install espeak-ng)")
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")


def loudness(path) -> float:
    """RMS of the samples, as a fraction of full scale."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples ** 2)) / 32768)


@pytest.mark.parametrize("profile", list_profiles())
def test_every_drills_phrases_render_to_short_audible_wavs(tmp_path, profile):
    espeak_or_skip()
    bank = PhraseBank(tmp_path)
    wavs = bank.render(profile_phrases(load_profile(profile)))
    assert PRAISE in wavs and "turn sideways" in wavs
    for text, path in wavs.items():
        seconds = wav_seconds(path)
        assert 0.3 < seconds <= MAX_PHRASE_S, (text, seconds)  # a cue, not a lecture
        assert loudness(path) > 0.02, text  # well above silence


def test_phrases_are_rendered_once_and_volume_makes_them_louder(tmp_path):
    espeak_or_skip()
    bank = PhraseBank(tmp_path / "a", volume=80)
    path = bank.wav("soft knees")
    made = path.stat().st_mtime_ns
    assert PhraseBank(tmp_path / "a", volume=80).render(["soft knees"])["soft knees"].stat().st_mtime_ns == made
    quiet = PhraseBank(tmp_path / "b", volume=20).wav("soft knees")
    assert loudness(quiet) < 0.5 * loudness(path)


class Heard:
    """A speaker stand-in that records each phrase as it is asked for."""

    def __init__(self):
        self.said = []

    def say(self, name, wav):
        self.said.append(name)

    def close(self):
        pass


def test_the_rules_once_per_fault_per_rep_praise_after_a_fault_framing_not_too_often(tmp_path):
    espeak_or_skip()
    now = [0.0]
    heard = Heard()
    voice = Voice(PhraseBank(tmp_path), heard, framing_repeat_s=8.0, rep_count_every=3, clock=lambda: now[0])
    voice.prepare(["tuck the chin, long neck", "long spine, chest proud", "turn sideways", "6"])
    voice.fault("head_not_neutral", "tuck the chin, long neck")
    voice.fault("head_not_neutral", "tuck the chin, long neck")  # same rep: once
    voice.fault("rounded_back", "long spine, chest proud")
    voice.rep_finished(clean=False, buzzed=True)
    voice.fault("head_not_neutral", "tuck the chin, long neck")  # a new rep: again
    voice.rep_finished(clean=False, buzzed=True)
    voice.rep_finished(clean=True, buzzed=False)  # the first clean one after faults: praise (rep 3, praise wins over the count)
    voice.rep_finished(clean=True, buzzed=False)  # clean again: nothing
    voice.framing("turn sideways")
    now[0] = 5.0
    voice.framing("turn sideways")  # too soon
    now[0] = 9.0
    voice.framing("turn sideways")
    for _ in range(2):
        voice.rep_finished(clean=True, buzzed=False)  # rep 6: the count
    assert heard.said == ["tuck the chin, long neck", "long spine, chest proud", "tuck the chin, long neck", PRAISE,
                          "turn sideways", "turn sideways", "6"]
    voice.enabled = False
    voice.fault("too_fast", "slow the lowering down")
    quiet = Voice(PhraseBank(tmp_path), heard, quiet=lambda: True)
    quiet.fault("too_fast", "slow the lowering down")
    assert heard.said[-1] == "6"  # switched off, and quiet hours: silent


def test_a_phrase_never_plays_over_another_and_the_newest_waiting_one_wins(tmp_path):
    espeak_or_skip()
    speaker = RecordingSpeaker()
    bank = PhraseBank(tmp_path)
    for text in ("push the hips back, keep the shins vertical", "soft knees", "long spine, chest proud"):
        speaker.say(text, bank.wav(text))
    assert speaker.drain(15.0)
    speaker.close()
    names = [p[0] for p in speaker.played]
    assert names == ["push the hips back, keep the shins vertical", "long spine, chest proud"]  # "soft knees" replaced
    (_, _, _, first_end), (_, _, second_start, _) = speaker.played
    assert second_start >= first_end


def test_a_faulty_real_clip_speaks_the_right_cues_in_order_after_the_buzzer(tmp_path, settings, clips_dir, clip_poses):
    """formfit_squat at its own pace with voice on: each squat's cue once, in order, each asked for
    right after its buzz and played without overlap; the buzzer's latency is the same as with the
    voice off."""
    espeak_or_skip()
    clip = "formfit_squat_side.mp4"

    buzzes: list[float] = []

    def replay(voice_on: bool):
        speaker = RecordingSpeaker()
        faults: list[tuple[str, float]] = []
        buzzes.clear()
        cfg = station_settings(settings, tmp_path / f"{voice_on}.db", voice={"enabled": voice_on}).model_copy(
            update={"data_dir": tmp_path / "data"})
        with build(cfg, clips_dir / clip, clip_poses(clip), speaker, faults) as rig:
            buzz = rig.signals.fault

            def timed_buzz(name):  # when the LED and buzzer were driven, to compare with the voice
                buzzes.append(time.monotonic())
                return buzz(name)

            rig.signals.fault = timed_buzz
            summary = rig.run()
            assert speaker.drain(10.0)  # let the last cue finish before the station closes
        return summary, faults, speaker

    from device.stats import median

    quiet_summary, _, _ = replay(False)
    summary, faults, speaker = replay(True)
    from device.analysis.vocabulary import FRAMING_CUES, Fault

    cue = load_profile("hinge").faults.cue(Fault.SQUATTING_THE_HINGE)
    framing = set(FRAMING_CUES.values())
    assert [f for f, _ in faults] == ["squatting_the_hinge"] * 3
    spoken_faults = [p for p in speaker.played if p[0] not in framing]  # (the athlete also turns once: "turn sideways")
    assert [p[0] for p in spoken_faults] == [cue] * 3
    assert len(buzzes) == 3
    for (_, asked, started, _), buzzed in zip(spoken_faults, buzzes):
        assert asked >= buzzed  # the buzzer first
        assert started - asked < 0.1 or any(p[3] <= started + 0.01 and p[3] > asked for p in speaker.played)
        # (a ready buffer: it starts at once, unless it waited for the phrase before it to end)
    for (_, _, _, end), (_, _, start, _) in zip(speaker.played, speaker.played[1:]):
        assert start >= end  # never over itself
    assert median(summary.signal_latency_ms) <= 2 * max(median(quiet_summary.signal_latency_ms), 5.0)


def build(cfg, clip, poses, speaker, faults):
    import time as _time

    from device.analysis.vocabulary import FaultRaised
    from device.station.assembly import build_station

    def on_event(event):
        if isinstance(event, FaultRaised):
            faults.append((event.event.fault.value, _time.monotonic()))

    return build_station(cfg, str(clip), headless=False, fast=False, engine=RecordedPoses(poses), speaker=speaker,
                         on_event=on_event)


def test_without_espeak_ng_the_station_runs_without_a_voice_and_says_why(tmp_path, settings, monkeypatch, caplog):
    from device.station.assembly import make_voice

    real_which = shutil.which
    monkeypatch.setattr(voice_module.shutil, "which", lambda name: None if name == "espeak-ng" else real_which(name))
    cfg = station_settings(settings, tmp_path / "s.db", voice={"enabled": True}).model_copy(update={"data_dir": tmp_path})
    assert make_voice(cfg, RecordingSpeaker()) is None
    assert "espeak-ng is not installed" in caplog.text


def test_without_an_audio_device_the_voice_is_off_with_a_clear_reason(monkeypatch, tmp_path):
    cards = tmp_path / "cards"
    cards.write_text("--- no soundcards ---\n")
    real_path = voice_module.Path
    monkeypatch.setattr(voice_module, "Path", lambda p: cards if p == "/proc/asound/cards" else real_path(p))
    if shutil.which("aplay") is None:
        with pytest.raises(VoiceError, match="aplay is not installed"):
            AlsaSpeaker()
    else:
        with pytest.raises(VoiceError, match="no audio device"):
            AlsaSpeaker()


def test_a_phrase_not_rendered_yet_is_rendered_beside_the_loop_not_in_it(tmp_path):
    """A rep count, or a cue of a drill still rendering: asking returns at once (no espeak-ng run
    on the loop's thread) and the phrase follows when it is ready."""
    espeak_or_skip()
    heard = Heard()
    voice = Voice(PhraseBank(tmp_path), heard, rep_count_every=1)
    started = time.monotonic()
    voice.rep_finished(clean=True, buzzed=False)
    assert time.monotonic() - started < 0.01 and heard.said == []
    deadline = time.monotonic() + 10
    while not heard.said and time.monotonic() < deadline:
        time.sleep(0.02)
    assert heard.said == ["1"]


def test_alsa_plays_a_cue_through_aplay(tmp_path, caplog):
    """The real playback path, on ALSA's null device (no sound card on a build machine): aplay
    takes the phrase and reports no error; a device that does not exist is reported in the log."""
    espeak_or_skip()
    if shutil.which("aplay") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("aplay is not installed; CI must install it (apt-get install alsa-utils)")
        pytest.skip("aplay is not installed (apt-get install alsa-utils)")
    bank = PhraseBank(tmp_path)
    speaker = AlsaSpeaker("null")
    speaker.say("soft knees", bank.wav("soft knees"))
    assert speaker.drain(10.0)
    speaker.close()
    assert "failed" not in caplog.text and "could not play" not in caplog.text
    wrong = AlsaSpeaker("no_such_card_here")  # a mistyped voice.device: said in the log, nothing stops
    wrong.say("soft knees", bank.wav("soft knees"))
    assert wrong.drain(10.0)
    wrong.close()
    assert "aplay on no_such_card_here failed" in caplog.text
