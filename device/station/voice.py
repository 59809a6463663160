"""Spoken cues: the station says what to fix, in the coach's words, offline.

The buzzer stays the fast signal; the voice says what it was about. Three small pieces, each
replaceable on its own (as gpiozero puts pins behind a factory):

- `PhraseBank` renders each phrase once to a WAV with espeak-ng (the OS package) and caches it,
  so an alert plays a ready buffer: no synthesis on the way from a frame to a cue.
- A speaker plays those WAVs one at a time on its own thread: `AlsaSpeaker` through `aplay` (the
  Pi's headphone jack, HDMI, or a USB or Bluetooth speaker, chosen by `voice.device`), or
  `RecordingSpeaker` for tests and benchmarks. It never speaks over itself: a phrase asked for
  while another plays waits, and a newer one replaces it.
- `Voice` decides what to say and when: a fault's cue at most once per fault per rep, praise on
  the first clean rep after a faulty one, framing cues at most once every few seconds, the rep
  count every N reps if asked; nothing in quiet hours or while switched off. It only queues, so it
  never delays the LED or the buzzer.
"""
from __future__ import annotations

import hashlib
import logging
import queue
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path
from typing import Callable, Iterable, Optional, Protocol

from device.errors import StationError

log = logging.getLogger(__name__)

PRAISE = "that's it"
SPEECH_RATE_WPM = 165  # espeak-ng's words per minute: a coach's pace, clear over gym noise
MAX_PHRASE_S = 4.0  # a cue longer than this is a lecture, not a cue


class VoiceError(StationError):
    """Speech cannot be made or played here (espeak-ng or the audio device missing)."""


class Speaker(Protocol):
    def say(self, name: str, wav: Path) -> None: ...

    def close(self) -> None: ...


# --- rendering ------------------------------------------------------------------------------------


def espeak_path() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise VoiceError("espeak-ng is not installed (sudo apt-get install espeak-ng); spoken cues are off")
    return path


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


class PhraseBank:
    """Phrases rendered to WAV files once, cached by text, voice and volume."""

    def __init__(self, cache_dir: Path, voice: str = "en", volume: int = 80):
        self.cache_dir = Path(cache_dir)
        self.voice = voice
        self.volume = volume
        self._espeak = espeak_path()
        self._wavs: dict[str, Path] = {}

    def path_for(self, text: str) -> Path:
        key = hashlib.sha256(f"{self.voice}|{self.volume}|{SPEECH_RATE_WPM}|{text}".encode()).hexdigest()[:16]
        return self.cache_dir / f"{key}.wav"

    def render(self, phrases: Iterable[str]) -> dict[str, Path]:
        """Make sure every phrase has its WAV; returns text -> path for all of them."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for text in dict.fromkeys(phrases):
            path = self.path_for(text)
            if not path.exists():
                partial = path.with_suffix(".part.wav")
                # espeak-ng's amplitude runs 0-200 (100 is its default); volume is 0-100 %.
                proc = subprocess.run([self._espeak, "-v", self.voice, "-s", str(SPEECH_RATE_WPM),
                                       "-a", str(2 * self.volume), "-w", str(partial), text],
                                      capture_output=True, text=True, timeout=30)
                if proc.returncode != 0 or not partial.exists():
                    raise VoiceError(f"espeak-ng could not say {text!r}: {proc.stderr.strip() or proc.returncode}")
                partial.replace(path)
            self._wavs[text] = path
        return {text: self._wavs[text] for text in phrases}

    def wav(self, text: str) -> Path:
        if text not in self._wavs:
            self.render([text])
        return self._wavs[text]

    def ready(self, text: str) -> Optional[Path]:
        """The phrase's WAV if it is rendered already (no synthesis), else None."""
        return self._wavs.get(text)


# --- speakers -------------------------------------------------------------------------------------


class _OneAtATime:
    """Plays on its own thread, one phrase at a time; one waiting phrase at most (the newest)."""

    def __init__(self):
        self._waiting: "queue.Queue[tuple[str, Path, float]]" = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._busy = threading.Event()  # a phrase is playing
        self._thread = threading.Thread(target=self._run, name="voice", daemon=True)
        self._thread.start()

    def say(self, name: str, wav: Path) -> None:
        item = (name, wav, time.monotonic())
        try:
            self._waiting.put_nowait(item)
        except queue.Full:
            try:
                self._waiting.get_nowait()  # a newer phrase replaces the one still waiting
            except queue.Empty:
                pass
            self._waiting.put_nowait(item)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                name, wav, asked = self._waiting.get(timeout=0.1)
            except queue.Empty:
                continue
            self._busy.set()
            try:
                self._play(name, wav, asked)
            except Exception as err:  # a speaker that fails must not take the station down
                log.warning("could not play %r: %s", name, err)
            finally:
                self._busy.clear()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until nothing plays or waits (the end of a clip, a benchmark); True if so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._waiting.empty() and not self._busy.is_set():
                time.sleep(0.15)  # the thread may have just taken one
                if self._waiting.empty() and not self._busy.is_set():
                    return True
            time.sleep(0.05)
        return False

    def _play(self, name: str, wav: Path, asked: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class AlsaSpeaker(_OneAtATime):
    """`aplay` on an ALSA device: "default", "plughw:CARD=Headphones" (the Pi's jack), an HDMI or
    USB card (`aplay -L` lists them), or a Bluetooth speaker through bluealsa."""

    def __init__(self, device: str = "default"):
        aplay = shutil.which("aplay")
        if aplay is None:
            raise VoiceError("aplay is not installed (sudo apt-get install alsa-utils); spoken cues are off")
        cards = Path("/proc/asound/cards")
        if device == "default" and (not cards.exists() or "no soundcards" in cards.read_text()):
            raise VoiceError("no audio device (no sound card in /proc/asound/cards): plug in a speaker or enable the "
                             "Pi's headphone jack; spoken cues are off")
        self.aplay, self.device = aplay, device
        super().__init__()

    def _play(self, name: str, wav: Path, asked: float) -> None:
        proc = subprocess.Popen([self.aplay, "-q", "-D", self.device, str(wav)], stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate(timeout=MAX_PHRASE_S + 5)
        if proc.returncode != 0:
            log.warning("aplay on %s failed: %s", self.device, err.strip())


class RecordingSpeaker(_OneAtATime):
    """Plays nothing; records what would be said, when it would start and stop (tests, benchmarks).
    A phrase lasts as long as its WAV, so overlap and waiting behave as on a speaker."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.played: list[tuple[str, float, float, float]] = []  # (phrase, asked, started, ended)
        super().__init__()

    def _play(self, name: str, wav: Path, asked: float) -> None:
        started = self.clock()
        time.sleep(wav_seconds(wav))
        self.played.append((name, asked, started, self.clock()))


def profile_phrases(profile) -> list[str]:
    """Everything the voice may say under a drill: its fault cues, the framing cues, the praise."""
    from device.analysis.framing import HEAD_CUT_CUE
    from device.analysis.vocabulary import FRAMING_CUES, Fault

    cues = [profile.faults.cue(fault) for fault in Fault if profile.faults.enabled(fault)]
    dropped = profile.faults.head_not_neutral.cue_dropped
    return [*cues, *([dropped] if dropped else []), *(c for c in FRAMING_CUES.values() if c), HEAD_CUT_CUE, PRAISE]


# --- what to say, and when ------------------------------------------------------------------------


class Voice:
    """The station's spoken cues. Every method only queues; none waits for audio."""

    def __init__(self, bank: PhraseBank, speaker: Speaker, enabled: bool = True,
                 framing_repeat_s: float = 8.0, rep_count_every: int = 0,
                 quiet: Callable[[], bool] = lambda: False, clock: Callable[[], float] = time.monotonic):
        self.bank, self.speaker = bank, speaker
        self.enabled = enabled
        self.framing_repeat_s = framing_repeat_s
        self.rep_count_every = rep_count_every
        self.quiet = quiet
        self.clock = clock
        self._said_this_rep: set[str] = set()
        self._rep_had_fault = False
        self._last_framing: dict[str, float] = {}
        self.reps = 0

    def prepare(self, phrases: Iterable[str]) -> None:
        """Render a drill's phrases now (at start, on a drill change), not when they are needed."""
        self.bank.render([*phrases, PRAISE])

    def _say(self, text: str) -> None:
        if not self.enabled or self.quiet():
            return
        wav = self.bank.ready(text)
        if wav is not None:
            self.speaker.say(text, wav)
            return
        # Not rendered yet (a rep count, a drill's cues still rendering): render beside the loop.
        threading.Thread(target=self._render_and_say, args=(text,), name="voice-render", daemon=True).start()

    def _render_and_say(self, text: str) -> None:
        try:
            self.speaker.say(text, self.bank.wav(text))
        except VoiceError as err:
            log.warning("%s", err)

    def fault(self, name: str, cue: str) -> None:
        """A fault was raised: its cue, once per fault per rep."""
        self._rep_had_fault = True
        if name in self._said_this_rep:
            return
        self._said_this_rep.add(name)
        self._say(cue)

    def rep_finished(self, clean: bool, buzzed: bool) -> None:
        """End of a rep: praise the first clean rep after one that buzzed (as the LED does: a
        borderline or unjudged rep said nothing to fix); count if asked."""
        praise = clean and self._rep_had_fault
        self._rep_had_fault = buzzed
        self._said_this_rep.clear()
        self.reps += 1
        if praise:
            self._say(PRAISE)
        elif self.rep_count_every and self.reps % self.rep_count_every == 0:
            self._say(str(self.reps))

    def framing(self, cue: str) -> None:
        """A framing problem ("turn sideways"): said at most once every framing_repeat_s."""
        now = self.clock()
        if now - self._last_framing.get(cue, -1e9) < self.framing_repeat_s:
            return
        self._last_framing[cue] = now
        self._say(cue)

    def new_session(self) -> None:
        self.reps = 0
        self._said_this_rep.clear()
        self._rep_had_fault = False

    def close(self) -> None:
        self.speaker.close()
