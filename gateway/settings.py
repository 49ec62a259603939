"""Settings: embedded defaults, then a TOML file, then GATEWAY_* environment variables.

A TOML section flattens into the names below: ``[http] port = 8080`` sets ``http_port``.
Lists of tables (``[[pstn_numbers]]``, ``[[dids]]``) are taken as they are.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.media.ringback import ringback_tone

ENV_PREFIX = "GATEWAY_"


@dataclass
class Settings:
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    # UDP and TCP listen on sip_port; TLS on sip_tls_port when the certificate files exist.
    sip_transports: str = "udp,tcp"
    sip_tls_port: int = 5061
    sip_tls_cert: Path = Path("certs/server.pem")
    sip_tls_key: Path = Path("certs/server.key")
    sip_realm: str = "voice-gateway"
    # Digest challenges in this order. RFC 8760 wants SHA-256 first; some clients (SIPp 3.6)
    # answer only the first challenge and only MD5: for them, put MD5 first.
    sip_digest_algorithms: str = "SHA-256,MD5"
    # How often STATIC trunks with sipOptions enabled get an OPTIONS keepalive (seconds).
    sip_options_interval: float = 30.0
    # An upstream carrier: PHONE numbers the simulated PSTN does not have go there.
    carrier_uri: str = ""  # e.g. "sip:sip.carrier.example:5060;transport=tcp"
    carrier_username: str = ""
    carrier_password: str = ""
    carrier_domain: str = ""  # the registration domain, when not the carrier's host
    carrier_register: bool = False
    carrier_expires: int = 300
    # The address put in SDP, and the range RTP ports are taken from.
    media_address: str = ""
    rtp_port_min: int = 20000
    rtp_port_max: int = 30000
    # Two SIP legs of a dialog with the same codec send RTP to each other, not through us.
    media_bypass: bool = True
    # WebRTC legs: STUN/TURN URLs, comma-separated (none by default: aiortc would otherwise
    # use a public STUN server), with the TURN credentials; the host addresses offered as ICE
    # candidates (empty: every interface but loopback; "127.0.0.1" for a single-host setup).
    webrtc_ice_servers: str = ""
    webrtc_turn_username: str = ""
    webrtc_turn_password: str = ""
    webrtc_host_addresses: str = ""
    # WebRTC tokens (POST /webrtc/1/token): lifetime when the request names none, and the most
    # a request may ask for (seconds); the calls configuration a token's calls reach when the
    # token names no applicationId.
    webrtc_token_ttl: int = 3600
    webrtc_token_max_ttl: int = 86400
    webrtc_calls_configuration_id: str = ""
    # A WebRTC leg whose RTP stops this long (seconds) while its socket stays open has lost its
    # media (a network change, a suspended tab): it ends rather than wait for ICE consent (30 s).
    webrtc_media_timeout: float = 5.0
    data_dir: Path = Path("data")
    api_key: str = ""
    # Where the webhook retries of one event stop: at least ten minutes, by default an hour.
    webhook_retry_initial: float = 1.0
    webhook_retry_max: float = 60.0
    webhook_retry_window: float = 3600.0
    webhook_timeout: float = 10.0
    # Delivered and dropped events stay in the outbox this long (seconds), for inspection.
    webhook_keep_finished: float = 86400.0
    # Simulated PSTN numbers added to the default plan: {number, behaviour, options}.
    pstn_numbers: list[dict[str, Any]] = field(default_factory=list)
    pstn_default_plan: bool = True
    # Numbers the user owns, linked to a calls configuration: {number, callsConfigurationId}.
    dids: list[dict[str, Any]] = field(default_factory=list)
    # Uploaded audio files (/calls/1/files): the largest upload, and how long a file is kept
    # after its upload or its last play (the Calls API removes files unused for 90 days).
    file_max_bytes: int = 10 * 1024 * 1024
    file_retention_days: float = 90.0
    # Audio played from a URL: the whole fetch's time limit (seconds) and its largest body.
    url_fetch_timeout: float = 10.0
    url_fetch_max_bytes: int = 10 * 1024 * 1024
    # Decoded audio (files and URLs, 8 kHz int16: about 1 MB a minute) kept for replay.
    audio_cache_bytes: int = 64 * 1024 * 1024
    # The ringback generated for ringbackGeneration (dialogs, conferences): eu (ITU-T E.180,
    # 425 Hz 1 s on 4 s off), us (440+480 Hz 2 s on 4 s off) or uk (400+450 Hz double ring).
    ringback_tone: str = "eu"
    log_level: str = "info"
    event_loop: str = "uvloop"  # or "asyncio"

    def __post_init__(self) -> None:
        ringback_tone(self.ringback_tone)  # a bad name is refused at start, naming the choices

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'gateway.sqlite3'}"


def _coerce(name: str, raw: Any) -> Any:
    current = {f.name: f for f in dataclasses.fields(Settings)}[name]
    kind = current.type if isinstance(current.type, str) else current.type.__name__
    if kind in ("int",):
        return int(raw)
    if kind in ("float",):
        return float(raw)
    if kind in ("bool",):
        return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
    if kind in ("Path",):
        return Path(raw)
    return raw


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}".replace("-", "_")
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def load_settings(config: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build settings; unknown keys are an error so that a typo does not pass silently."""
    environ = dict(os.environ if environ is None else environ)
    known = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    if config is not None:
        with open(config, "rb") as fh:
            for name, raw in _flatten(tomllib.load(fh)).items():
                if name not in known:
                    raise ValueError(f"{config}: unknown setting {name!r}")
                values[name] = _coerce(name, raw)
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in known and name not in ("pstn_numbers", "dids"):
            values[name] = _coerce(name, raw)
    return Settings(**values)
