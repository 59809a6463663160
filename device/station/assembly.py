"""Wires a station from settings: `build_station` is the one place the pose engine, the drill
profile, the rep log, the LED and buzzer, the live state and the frame source are put together.
`station run`, `station log`, `station bench` and the tests all build their station here.

Also what runs beside a station for as long as it runs: the retention housekeeping and the
SIGTERM/SIGINT handling (finish the frame in hand, close the session, exit 0).
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from datetime import datetime
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from device.analysis.cues import SETTING as CUES_SETTING, CueWords
from device.capture import FrameSource, open_source
from device.config import Settings
from device.errors import ConfigError
from device.pose.engine import PoseEngine
from device.station.addresses import lan_ipv4, phone_urls
from device.station.broker_link import BrokerLink
from device.station.clock import kernel_clock_synchronised, untrusted
from device.station.live import LiveState
from device.station.loop import Analyzer, RunSummary, Station
from device.station.notify import SystemdNotifier
from device.station.replog import RepLog, pending_path_for
from device.station.signals import QuietHours, Signals, signals_from_settings
from device.station.voice import AlsaSpeaker, PhraseBank, Speaker, Voice, VoiceError, profile_phrases
from device.contract.records import StorageError
from device.station.store import RepStore, open_rep_log

log = logging.getLogger(__name__)

RETENTION_CHECK_S = 24 * 3600
OPEN_RETRY_FIRST_S = 1.0  # a rep log that could not be opened at start is tried again after this...
OPEN_RETRY_MAX_S = 60.0  # ...then twice as long each time, up to this


def analyzer_factory(settings: Settings, cues: Optional[CueWords] = None) -> Callable[[str], Analyzer]:
    """name -> a fresh analyzer for that drill profile (raises ConfigError for a bad profile), saying
    the coach's own cue words for it where `cues` has them."""
    from device.analysis.profiles import load_profile
    from device.analysis.analyzer import HingeAnalyzer

    def make(name: str) -> Analyzer:
        return HingeAnalyzer(load_profile(name, settings.analysis.profiles_dir),
                             cues=cues.for_drill(name) if cues is not None else None)

    return make


def choose_profile(settings: Settings, make_analyzer: Callable[[str], object], saved: dict[str, Any],
                   requested: Optional[str] = None) -> str:
    """The drill to start with: the one asked for, else the one last chosen on the page, else
    analysis.profile. A saved choice that no longer loads falls back, with a warning; a profile
    asked for or configured that does not load is an error."""
    chosen = requested or saved.get("profile") or settings.analysis.profile
    try:
        make_analyzer(chosen)
    except Exception as err:
        if requested or chosen == settings.analysis.profile:
            raise
        log.warning("saved drill profile %r is unusable (%s); using %s", chosen, err, settings.analysis.profile)
        chosen = settings.analysis.profile
        make_analyzer(chosen)
    return chosen


@dataclass
class StationRig:
    """A station wired from settings, and the collaborators whose lifetime it owns (the rep log and
    its store, the LED and buzzer, the systemd notifier). `run()` runs it over its source until the
    source ends or `stop()`; `close()` (or leaving the `with` block) releases everything."""

    station: Station
    live: LiveState
    replog: RepLog
    signals: Optional[Signals]
    notifier: SystemdNotifier
    make_source: Callable[[], FrameSource]
    source_live: bool  # a camera (frames come at its pace), not a clip
    lossless: bool  # every frame is processed (a clip replayed with --fast)
    retry_initial_s: float
    retry_max_s: float
    link: Optional[BrokerLink] = None  # the MQTT link, when [mqtt] host is set
    opener: Optional["RepLogOpener"] = None  # keeps trying a rep log that could not be opened at start

    def when_rep_log_opens(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the rep log is open: now, or (on the opener's thread) when it opens.
        What needs the rep log (the page, the MQTT outbox) starts this way; coaching never waits."""
        if self.replog.store is not None or self.opener is None:
            callback()
        else:
            self.opener.when_open(callback)

    def run(self) -> RunSummary:
        if self.link is not None:
            self.when_rep_log_opens(self._start_link)
        if self.opener is not None and not self.opener.is_alive() and not self.opener.opened.is_set():
            self.opener.start()
        return self.station.run(self.make_source, lossless=self.lossless, retry_initial_s=self.retry_initial_s,
                                retry_max_s=self.retry_max_s)

    def _start_link(self) -> None:
        link = self.link
        if link is None or link.running:
            return
        try:
            link.start()
        except StorageError as err:  # coaching goes on; the reps wait in the outbox for the next start
            log.error("MQTT: cannot read the outbox (%s); not publishing this run", err)

    def stop(self) -> None:
        self.station.stop()

    def close(self) -> None:
        if self.opener is not None:
            self.opener.stop()
        try:
            self.replog.close()
        finally:
            if self.link is not None:
                self.link.stop()  # after the rep log: what it committed last goes out too
            if self.signals is not None:
                self.signals.close()
            if self.station.voice is not None:
                self.station.voice.close()
            self.notifier.close()

    def __enter__(self) -> "StationRig":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_station(
    settings: Settings,
    source_spec: Optional[str] = None,
    *,
    profile: Optional[str] = None,
    headless: bool = False,
    fast: bool = False,
    jsonl: Optional[Path] = None,
    pin_factory=None,
    engine=None,
    athlete: Optional[str] = None,
    on_event: Optional[Callable[[Any], None]] = None,
    speaker: Optional[Speaker] = None,
    wall_clock: Callable[[], float] = time.time,
    make_source: Optional[Callable[[], FrameSource]] = None,
) -> StationRig:
    """The station `settings` describe, over `source_spec` (default source.camera).

    profile: the drill (default: the one chosen on the page last time, else analysis.profile).
    headless: no LED or buzzer. fast: replay a clip as fast as it goes, every frame.
    jsonl: also append each rep to this JSON-lines file. pin_factory: gpiozero pins (default from
    signals.pin_factory). engine: a pose backend in place of the model (tests replay recorded poses).
    athlete, on_event: passed to the Station (the session's label; every analysis event, for tests).
    speaker: where spoken cues go when voice.enabled (default: ALSA; tests pass a RecordingSpeaker).
    wall_clock: the Unix time reps are logged at (tests replay clips as sessions on chosen days).
    make_source: makes the frame source in place of the spec's (`station bench` hands over frames
    decoded beforehand, as a camera does, so no video decoder shares the model's cores).
    The rep log is settings.db_path. Refuses to start on a missing or corrupt model.
    """
    spec = source_spec or settings.source.camera

    def open_spec() -> FrameSource:
        src = settings.source
        return open_source(spec, src.width, src.height, src.fps, pace=not fast)

    source_maker = make_source or open_spec

    if settings.mqtt.enabled and settings.mqtt.station_id is None:
        raise ConfigError("mqtt.station_id is required when mqtt.host is set (e.g. station_id = \"wall-1\")")
    probe = source_maker()  # not started: checks the spec first, tells the source's name and whether it is a camera
    if not probe.live:
        # A clip is opened and closed once now: a missing or unreadable one fails here, before the
        # models load and the page's address is printed. (A camera is not grabbed twice.)
        probe.start()
        probe.stop()
    if engine is None:
        engine = PoseEngine.from_settings(settings)
    cue_words = CueWords()
    make_analyzer = analyzer_factory(settings, cue_words)
    with ExitStack() as undo:  # on a failure part-way, close what was already opened
        store, note = open_checked_rep_log(settings.db_path, outbox=settings.mqtt.enabled)
        if store is not None:
            undo.callback(store.close)
            try:
                if closed := store.close_interrupted():
                    log.info("closed %d sessions an earlier run left open (kill -9 or power loss)", closed)
            except StorageError as err:  # a read-only log: the pending file takes over below
                log.warning("could not close earlier sessions: %s", err)
        saved = store.settings() if store is not None else {}
        cue_words.restore(saved.get(CUES_SETTING))  # the coach's own cue words, as the page left them
        profile = choose_profile(settings, make_analyzer, saved, profile)
        buzzer_enabled = bool(saved.get("buzzer_enabled", settings.signals.buzzer_enabled))
        replog = RepLog(store, jsonl, settings.store.min_free_mb,
                        pending_path=pending_path_for(settings.db_path))
        signals = None
        if not headless and settings.signals.enabled:
            signals, _ = signals_from_settings(settings.signals, pin_factory)
            undo.callback(signals.close)
            signals.set_buzzer_enabled(buzzer_enabled)
        live = LiveState()
        live.update(profile=profile, buzzer_enabled=buzzer_enabled)
        voice = None if headless else make_voice(settings, speaker)
        phrases = phrases_for(settings, cue_words)
        if voice is not None:
            undo.callback(voice.close)
            voice.prepare(phrases(profile))
            voice.enabled = bool(saved.get("voice_enabled", True))  # as the page left it
            live.update(voice_enabled=voice.enabled)
        notifier = SystemdNotifier()
        undo.callback(notifier.close)

        if note:
            live.update(storage=note)
            if signals is not None:
                signals.warn()  # the error tone and a red flash, then on as usual
        opener = RepLogOpener(settings.db_path, replog, outbox=settings.mqtt.enabled) if store is None else None
        station = Station(
            engine=engine, make_analyzer=make_analyzer, profile=profile, replog=replog, signals=signals, live=live,
            notifier=notifier, idle_timeout_s=settings.session.idle_timeout_s, preview_fps=settings.web.preview_fps,
            camera_preview=settings.web.camera_preview, athlete=athlete, source_id=probe.source_id, on_event=on_event,
            voice=voice, phrases=phrases, wall_clock=wall_clock, cues=cue_words,
            nobody_fps=settings.source.nobody_fps, nobody_after_s=settings.source.nobody_after_s,
        )
        station.storage_note = note
        if opener is not None:
            opener.when_open(lambda: setattr(station, "storage_note", ""))  # the page stops saying it
        link = None
        if settings.mqtt.enabled:
            urls = [] if headless else phone_urls(settings.web.host, settings.web.port, lan_ipv4(), socket.gethostname())
            link = BrokerLink(settings.mqtt, settings.db_path, live, controls=station, version=package_version(),
                              page_url=urls[0] if urls else None, drills=drill_choices(settings))
        undo.pop_all()
    return StationRig(station, live, replog, signals, notifier, source_maker, source_live=probe.live,
                      lossless=fast and not probe.live, retry_initial_s=settings.source.retry_initial_s,
                      retry_max_s=settings.source.retry_max_s, link=link, opener=opener)


def drill_choices(settings: Settings) -> dict[str, str]:
    """The drills this station offers (its profiles, as its page offers them), id -> title, in the
    ladder's coaching order: what Home Assistant's drill select lists. A ladder or a drill file that
    does not load (the page says why) leaves them in name order, or named by their ids: the station
    never fails to start over Home Assistant's list."""
    from device.analysis.ladder import Ladder, coaching_order, load_ladder
    from device.analysis.profiles import list_profiles, profile_titles

    where = settings.analysis.profiles_dir
    titles = {name: name for name in list_profiles(where)}
    ladder: Optional[Ladder] = None
    try:
        titles = profile_titles(where)
        ladder = load_ladder(profiles_dir=where)
    except ConfigError as err:
        log.warning("Home Assistant's drill select lists the drills by name: %s", err)
    return {drill: titles[drill] for drill in coaching_order(titles, ladder)}


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hinge-station")
    except PackageNotFoundError:
        return ""


def phrases_for(settings: Settings, cues: Optional[CueWords] = None) -> Callable[[str], list[str]]:
    """drill name -> what the voice may say under it: its profile's phrases and the coach's own cues."""
    from device.analysis.profiles import load_profile

    def phrases(name: str) -> list[str]:
        own = list(cues.for_drill(name).values()) if cues is not None else []
        return profile_phrases(load_profile(name, settings.analysis.profiles_dir)) + own

    return phrases


def make_voice(settings: Settings, speaker: Optional[Speaker] = None) -> Optional[Voice]:
    """The spoken cues settings describe, or None (switched off, or no espeak-ng or audio device
    here: said once in the log and by `station doctor`, and everything else goes on)."""
    cfg = settings.voice
    if not cfg.enabled:
        return None
    try:
        bank = PhraseBank(settings.data_dir / "cache" / "voice", cfg.language, cfg.volume)
        out = speaker if speaker is not None else AlsaSpeaker(cfg.device)
    except VoiceError as err:
        log.warning("%s", err)
        return None
    quiet = QuietHours.parse(settings.signals.quiet_hours) if settings.signals.quiet_hours else None
    return Voice(bank, out, framing_repeat_s=cfg.framing_repeat_s, rep_count_every=cfg.rep_count_every,
                 quiet=(lambda: quiet.contains(datetime.now().time())) if quiet else (lambda: False))


def open_checked_rep_log(db_path: Path, outbox: bool = False) -> tuple[Optional[RepStore], str]:
    """The rep log, checked at start, and a line saying what was wrong with it ('' if nothing).
    A damaged file is moved aside and a fresh log started; a log that cannot be opened at all
    leaves the station coaching with reps kept in the pending file beside it (or, if that folder
    refuses too, in memory, and the exit status says so)."""
    try:
        store, moved = open_rep_log(db_path, outbox=outbox)
    except StorageError as err:
        pending = pending_path_for(db_path)
        try:
            pending.parent.mkdir(parents=True, exist_ok=True)
            kept = f"reps are kept in {pending.name} until it opens"
        except OSError as folder:  # no promise of a file its folder cannot hold
            kept = (f"reps are held in memory only ({pending.parent} cannot be made: {folder.strerror}); set data_dir "
                    "or store.db_path to a folder the station may write")
        log.error("the rep log cannot be opened: %s; coaching goes on, %s", err, kept)
        return None, f"rep log cannot be opened ({err}); {kept}"
    if moved is None:
        return store, ""
    note = f"the rep log was damaged; it was moved aside to {moved.name} and a fresh one started"
    log.error("%s", note)
    return store, note


# --- beside a running station ---------------------------------------------------------------------


class RepLogOpener(threading.Thread):
    """Keeps trying to open a rep log that could not be opened at start (a lock held by another
    program, a slow mount, a permission fixed later), waiting OPEN_RETRY_FIRST_S and then twice as
    long each time up to OPEN_RETRY_MAX_S. Once it opens, the rep log takes it (and writes what waited
    in the pending file meanwhile) and whatever waited for it starts (the page, the MQTT outbox)."""

    def __init__(self, db_path: Path, replog: RepLog, outbox: bool, first_s: float = OPEN_RETRY_FIRST_S,
                 max_s: float = OPEN_RETRY_MAX_S):
        super().__init__(name="rep-log-opener", daemon=True)
        self.db_path, self.replog, self.outbox = db_path, replog, outbox
        self.first_s, self.max_s = first_s, max_s
        self.opened = threading.Event()
        self.attempts = 0
        self._quit = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def when_open(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self.opened.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def stop(self) -> None:
        self._quit.set()
        if self.is_alive():
            self.join(10)

    def run(self) -> None:
        delay = self.first_s
        while not self._quit.wait(delay):
            self.attempts += 1
            store, _ = open_checked_rep_log(self.db_path, outbox=self.outbox)
            if store is None:
                delay = min(delay * 2, self.max_s)
                log.info("the rep log: next try in %.0f s", delay)
                continue
            try:
                store.close_interrupted()
            except StorageError as err:
                log.warning("could not close earlier sessions: %s", err)
            self.replog.attach(store)
            log.info("the rep log %s opened (try %d); what waited in the pending file goes in now", self.db_path,
                     self.attempts + 1)
            with self._lock:
                self.opened.set()
                callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # one that fails must not keep the others from starting
                    log.exception("starting what waited for the rep log failed")
            return


class RetentionKeeper(threading.Thread):
    """Deletes sessions older than store.retention_days, at start and once a day, on its own
    connection; never on a clock it cannot trust (not synchronised, or earlier than the newest row:
    a clock two years fast after a power cut would take the whole log), which it says in the log."""

    def __init__(self, db_path: Path, retention_days: int, stop: threading.Event,
                 clock: Callable[[], float] = time.time,
                 synchronised: Callable[[], Optional[bool]] = kernel_clock_synchronised):
        super().__init__(name="retention", daemon=True)
        self.db_path, self.retention_days, self.stop = db_path, retention_days, stop
        self.clock, self.synchronised = clock, synchronised
        self.skipped = ""  # why the last check deleted nothing ('' when it could decide)

    def prune_once(self) -> int:
        with RepStore(self.db_path) as store:
            now = self.clock()
            self.skipped = untrusted(now, store.newest_time(), self.synchronised())
            if self.skipped:
                log.warning("retention: nothing deleted: %s; trying again in a day", self.skipped)
                return 0
            gone = store.prune(now - self.retention_days * 86400)
        if gone:
            log.info("retention: removed %d sessions older than %d days", gone, self.retention_days)
        return gone

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.prune_once()
            except Exception as err:  # never take the station down for housekeeping
                log.warning("retention check failed: %s", err)
            self.stop.wait(RETENTION_CHECK_S)


@contextmanager
def retention(settings: Settings,
              synchronised: Callable[[], Optional[bool]] = kernel_clock_synchronised) -> Iterator[None]:
    """Keep the rep log within store.retention_days while the block runs (on a clock it can trust)."""
    stop = threading.Event()
    RetentionKeeper(settings.db_path, settings.store.retention_days, stop, synchronised=synchronised).start()
    try:
        yield
    finally:
        stop.set()


@contextmanager
def stopped_by_signals(station: Station) -> Iterator[threading.Event]:
    """SIGTERM and SIGINT stop the station (it finishes the frame in hand and closes the session);
    the event yielded is set once one came. Installed on the main thread only, where Python
    delivers signals; the previous handlers come back afterwards."""
    shutdown = threading.Event()

    def on_signal(*_) -> None:
        shutdown.set()
        station.stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        yield shutdown
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
