"""One settings object for the whole station: a TOML file, then HINGE_* environment overrides,
then command-line overrides, validated once at start.

Every section forbids unknown keys so a typo in the config file is an error that names the key,
not a silently ignored setting.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from device.contract.topics import RESERVED_IDS
from device.errors import ConfigError, format_validation_errors

DEFAULT_CONFIG_PATHS = (Path("/etc/hinge-station/config.toml"),)


def default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "hinge-station"


class Section(BaseModel):
    # NaN and infinity are refused everywhere (`fps = inf` would spin the loop), naming the key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelSettings(Section):
    dir: Optional[Path] = Field(None, description="Where fetched and quantized .tflite files live; default <data_dir>/models.")
    landmark_variant: str = Field(
        "auto",
        description="'auto' picks the fastest int8 variant that passed the accuracy gate, else 'float16' (the shipped model).",
    )
    threads: int = Field(2, ge=1, le=8, description="Interpreter threads per model.")
    runtime: Literal["auto", "tflite_runtime", "ai_edge_litert"] = "auto"


class PoseSettings(Section):
    min_detection_score: float = Field(0.5, gt=0, lt=1)
    min_tracking_presence: float = Field(
        0.5, gt=0, lt=1, description="Below this pose-presence score tracking is lost and the detector runs again."
    )
    refine_with_heatmap: bool = True


class SourceSettings(Section):
    camera: str = Field("auto", description="'auto' (Pi camera, else first webcam), 'picamera', 'webcam:N', or a video path.")
    width: int = Field(640, ge=64)
    height: int = Field(480, ge=64)
    fps: float = Field(30.0, gt=0)
    nobody_fps: float = Field(
        5.0, ge=0, description="With nobody in view for nobody_after_s, look at the camera only this often "
        "(every frame runs the person detector then, and an empty gym kept the Pi busy and hot); 0: every frame.")
    nobody_after_s: float = Field(2.0, ge=0, description="How long nobody must be in view before nobody_fps applies.")
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _retry_grows(self) -> "SourceSettings":
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(f"source.retry_max_s ({self.retry_max_s:g}) must be at least source.retry_initial_s "
                             f"({self.retry_initial_s:g}): the wait for a lost camera doubles up to it")
        return self


class AnalysisSettings(Section):
    profile: str = Field("hinge", description="Drill profile name (a TOML file in device/profiles or profiles_dir).")
    profiles_dir: Optional[Path] = None


class SignalSettings(Section):
    enabled: bool = True
    pin_factory: Literal["auto", "mock"] = Field("auto", description="'mock' drives gpiozero's MockFactory (no hardware).")
    led: Literal["rgb", "single"] = "rgb"
    led_red_pin: int = Field(17, ge=0, le=27)
    led_green_pin: int = Field(27, ge=0, le=27)
    led_blue_pin: int = Field(22, ge=0, le=27)
    led_active_high: bool = True
    buzzer: Literal["active", "passive", "none"] = "active"
    buzzer_pin: int = Field(18, ge=0, le=27)
    buzzer_enabled: bool = Field(True, description="Turn the buzzer off (quiet hours); the LED still signals.")
    quiet_hours: Optional[str] = Field(
        None, pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$",
        description="e.g. '21:00-07:00': no buzzing in this local-time window.",
    )
    fault_cooldown_s: float = Field(2.0, ge=0)


class VoiceSettings(Section):
    enabled: bool = Field(False, description="Speak each fault's cue (espeak-ng, offline) after the buzzer; "
                          "quiet hours apply. Needs a speaker: see deploy/README.md.")
    volume: int = Field(80, ge=0, le=100, description="Loudness of the spoken cues, percent.")
    device: str = Field("default", min_length=1, description="ALSA device for the cues (`aplay -L` lists them), "
                        "e.g. 'plughw:CARD=Headphones' for the Pi's jack.")
    language: str = Field("en", pattern=r"^[a-z]{2,3}([-_][a-zA-Z0-9]+)*$", description="espeak-ng voice, e.g. 'en', 'en-us'.")
    framing_repeat_s: float = Field(8.0, gt=0, description="Say a framing cue ('turn sideways') at most this often.")
    rep_count_every: int = Field(0, ge=0, description="Say the rep count every N reps (0: never).")


class SessionSettings(Section):
    idle_timeout_s: float = Field(20.0, gt=0, description="A session ends after this long with nobody in view.")


class StoreSettings(Section):
    db_path: Optional[Path] = Field(None, description="SQLite rep log; default <data_dir>/station.db.")
    jsonl_path: Optional[Path] = Field(None, description="Headless log: one JSON line per rep; default <data_dir>/reps.jsonl.")
    retention_days: int = Field(365, ge=1)
    min_free_mb: int = Field(50, ge=1, description="Below this much free disk, logging pauses (alerts keep going).")


class WebSettings(Section):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port (tests, benchmarks).")
    token: Optional[SecretStr] = Field(None, description="Write token for settings, labels and corrections.")
    read_requires_token: bool = False
    camera_preview: bool = Field(
        False,
        description="Show the camera picture behind the live skeleton. Off (the default): the page gets the "
        "skeleton on a blank background and no camera pixels leave the station. Frames are never stored.",
    )
    preview_fps: float = Field(3.0, gt=0, le=15)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the page answers to besides its IP addresses, localhost and the machine's own "
        "name (also <name>.local), e.g. a DNS name the gym gave it; \"*\" accepts any (not advised: DNS rebinding).",
    )


class HubSettings(Section):
    """`station hub`: one gym's stations into one database and one page (device/hub/)."""

    database_url: Optional[str] = Field(
        None, description="SQLAlchemy URL of the hub's database: default sqlite:///<data_dir>/hub.db; a gym that runs "
        "PostgreSQL gives postgresql+psycopg://user:password@host/dbname.")
    stations: list[Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]] = Field(
        default_factory=list, description="Allow-list of station ids; a message from any other station is logged and "
        "dropped. Empty: every station the broker lets publish under the prefix.")
    client_id: str = Field("hinge-hub", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="MQTT client id: the broker keeps "
                           "this hub's unacknowledged messages under it while the hub is down.")


class MqttSettings(Section):
    """The gym's MQTT broker (off until `host` is set): reps and sessions from the durable outbox,
    the live state and alerts, Home Assistant discovery. Topics: device/contract/topics.py."""

    host: Optional[str] = Field(None, min_length=1, description="Broker host name or IP; unset: MQTT is off.")
    port: Optional[int] = Field(None, ge=1, le=65535, description="Default 1883, or 8883 with tls.")
    station_id: Optional[str] = Field(
        None, pattern=r"^[a-z0-9_-]{1,32}$",
        description="This station's name in topics and at the hub, e.g. 'wall-1'; must match the broker user's ACL.")
    topic_prefix: str = Field("hinge", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
    username: Optional[str] = Field(None, min_length=1)
    password: Optional[SecretStr] = Field(None, description="Or password_file (keeps it out of the config file).")
    password_file: Optional[Path] = Field(None, description="A file holding the broker password (first line).")
    tls: bool = Field(False, description="Connect with TLS; the broker's certificate is always verified.")
    ca_file: Optional[Path] = Field(None, description="CA certificate (PEM) that signed the broker's; default: the system's CAs.")
    cert_file: Optional[Path] = Field(None, description="Client certificate (PEM), for brokers that require one.")
    key_file: Optional[Path] = Field(None, description="The client certificate's private key (PEM).")
    keepalive_s: int = Field(30, ge=1, le=3600, description="The broker marks the station offline after 1.5x this silence.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First wait before reconnecting; doubles up to reconnect_max_s.")
    reconnect_max_s: float = Field(60.0, gt=0)
    discovery: bool = Field(True, description="Announce the station to Home Assistant (MQTT discovery).")
    discovery_prefix: str = Field("homeassistant", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")

    @property
    def enabled(self) -> bool:
        return self.host is not None

    @model_validator(mode="after")
    def _consistent(self) -> "MqttSettings":
        if self.host is None:
            return self
        # station_id: checked where a station starts (device/station/assembly.py: build_station), since
        # a hub reads this section for the broker alone and has none, whether from a config file with a
        # [hub] section or from the environment (HINGE_MQTT__HOST) only.
        if self.password is not None and self.password_file is not None:
            raise ValueError("give mqtt.password or mqtt.password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("mqtt.password needs mqtt.username")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mqtt.cert_file and mqtt.key_file go together")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("mqtt.ca_file, cert_file and key_file need tls = true")
        for name in ("password_file", "ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"mqtt.{name} {path} does not exist")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("mqtt.reconnect_max_s must be at least reconnect_min_s")
        if self.station_id in RESERVED_IDS:
            raise ValueError(f"mqtt.station_id {self.station_id!r} is the name of the broker's {self.station_id} user, "
                             "which may not publish as a station; name the station otherwise (e.g. \"wall-1\")")
        return self

    @property
    def broker_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)

    def secret(self) -> Optional[str]:
        """The broker password, from the config or the first line of password_file."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            lines = Path(self.password_file).read_text().splitlines()
            return lines[0] if lines else ""
        return None


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HINGE_", env_nested_delimiter="__", extra="forbid", validate_assignment=True, allow_inf_nan=False
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    models: ModelSettings = ModelSettings()
    pose: PoseSettings = PoseSettings()
    source: SourceSettings = SourceSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    signals: SignalSettings = SignalSettings()
    session: SessionSettings = SessionSettings()
    voice: VoiceSettings = VoiceSettings()
    store: StoreSettings = StoreSettings()
    web: WebSettings = WebSettings()
    logging: LoggingSettings = LoggingSettings()
    mqtt: MqttSettings = MqttSettings()
    hub: HubSettings = HubSettings()

    @model_validator(mode="after")
    def _derive_paths(self) -> "Settings":
        if self.models.dir is None:
            self.models.dir = self.data_dir / "models"
        if self.store.db_path is None:
            self.store.db_path = self.data_dir / "station.db"
        if self.store.jsonl_path is None:
            self.store.jsonl_path = self.data_dir / "reps.jsonl"
        if self.hub.database_url is None:
            self.hub.database_url = f"sqlite:///{self.data_dir / 'hub.db'}"
        return self

    @property
    def db_path(self) -> Path:
        """The rep log: store.db_path, or <data_dir>/station.db when the config leaves it out."""
        assert self.store.db_path is not None  # filled in by _defaults
        return self.store.db_path

    @property
    def models_dir(self) -> Path:
        assert self.models.dir is not None
        return self.models.dir


def find_config_file(explicit: Optional[Path]) -> Optional[Path]:
    if explicit is not None:
        return explicit
    env = os.environ.get("HINGE_CONFIG")
    if env:
        return Path(env)
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def load_settings(path: Optional[Path] = None, overrides: Optional[dict[str, Any]] = None) -> Settings:
    """Load settings with precedence: overrides > HINGE_* environment > TOML file > defaults."""
    path = find_config_file(path)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist (copy deploy/config.example.toml there, or drop --config)")
    if path is not None and not os.access(path, os.R_OK):
        raise ConfigError(f"config file {path} is not readable by this user (it holds the write token: run as root "
                          "or the hinge-station user, or give --config another file)")

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
            if path is not None:
                sources += (TomlConfigSettingsSource(settings_cls, toml_file=path),)
            return sources

    origin = str(path) if path else "defaults and environment"
    unknown = unknown_environment(os.environ)
    if unknown:
        raise ConfigError("unknown HINGE_* environment variables (nested keys take two underscores, e.g. "
                          f"HINGE_WEB__TOKEN): {', '.join(unknown)}")
    try:
        loaded = _Loaded(**_nest(overrides or {}))
    except ValidationError as err:
        raise ConfigError(format_validation_errors(err, f"invalid configuration ({origin}):")) from None
    except ValueError as err:  # malformed TOML
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    return loaded


# HINGE_* variables that are not settings: the config file's path, and where `station evaluate`
# and the tests find the labelled clips.
NOT_SETTINGS = {"HINGE_CONFIG", "HINGE_SHARED_DIR"}
# HINGE_ARM64=1 opts tests/test_arm64.py in (deploy/test-arm64.sh, minutes of emulation); the
# station it runs inherits the variable and must not refuse it.
NOT_SETTINGS |= {"HINGE_ARM64"}
# HINGE_OUTAGE_MINUTES sets how long tests/test_fleet.py keeps the hub away (default 3; the 30
# is an opt-in run); the stations that test builds read their settings in the same process.
NOT_SETTINGS |= {"HINGE_OUTAGE_MINUTES"}
# Where the tests keep the models they fetch and the picamera2 build they make (tests/conftest.py,
# tests/test_picamera.py); the stations the tests start in their own process read settings beside them.
NOT_SETTINGS |= {"HINGE_TEST_MODELS_DIR", "HINGE_TEST_CACHE"}


def unknown_environment(environ: Any) -> list[str]:
    """HINGE_* variables that name no setting (pydantic would ignore them silently): a misspelled
    HINGE_WEB_TOKEN for HINGE_WEB__TOKEN must not leave the page without its token unnoticed."""
    out = []
    for name in sorted(environ):
        if not name.startswith("HINGE_") or name in NOT_SETTINGS:
            continue
        model: Any = Settings
        for part in name[len("HINGE_"):].lower().split("__"):
            fields = getattr(model, "model_fields", None)
            if fields is None or part not in fields:
                out.append(name)
                break
            model = fields[part].annotation
            model = next((a for a in getattr(model, "__args__", ()) if hasattr(a, "model_fields")), model)
    return out


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn {'web.port': 1} into {'web': {'port': 1}}; None values are dropped (flag not given)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested
