"""The composition root: builds the store, the core, the adapters and the API from settings.

The only module that knows every part; the core never imports an adapter.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from gateway.api.app import create_api
from gateway.api.auth import ApiKeyAuth
from gateway.api.web import router as web_router
from gateway.core.actions import ActionControl
from gateway.core.bridging import MediaBridges
from gateway.core.calls import CallControl
from gateway.core.conferences import ConferenceControl
from gateway.core.content import ContentLoader
from gateway.core.detection import MachineDetection
from gateway.core.dialogs import DialogControl
from gateway.core.files import FileLibrary
from gateway.core.recordings import RecordingControl
from gateway.media.audio_cache import AudioCache
from gateway.media.metrics import SessionRegistry
from gateway.media.plane import MediaPlane
from gateway.media.ringback import ringback_tone
from gateway.media.tts import SpeechSynthesizer
from gateway.settings import Settings
from gateway.store import Database
from gateway.store.conferences import SqlConferenceStore
from gateway.store.configurations import CallsConfiguration, ConfigurationStore, Did, DidStore
from gateway.store.dialogs import SqlDialogStore
from gateway.store.files import SqlFileStore
from gateway.store.legs import SqlLegStore
from gateway.store.recordings import SqlRecordingStore
from gateway.url_audio import UrlAudio
from gateway.webhooks.dispatcher import WebhookDispatcher
from trunks.pstn import SimulatedNumber, SimulatedPstn, default_plan
from trunks.pstn.api import router as pstn_router
from trunks.sip.service import SipService
from trunks.sip.trunk_api import router as sip_trunks_router
from trunks.sip.trunk_store import TrunkStore
from trunks.webrtc.adapter import WebRtcAdapter
from trunks.webrtc.peer import IceSettings, use_host_addresses
from trunks.webrtc.signalling import Signalling
from trunks.webrtc.signalling import router as webrtc_socket_router
from trunks.webrtc.tokens import TokenIssuer
from trunks.webrtc.tokens import router as webrtc_token_router

log = logging.getLogger(__name__)

API_KEY_FILE = "api-key"
API_USERNAME = "gateway"


def load_or_create_api_key(settings: Settings) -> tuple[str, bool]:
    """The configured key, else the data directory's development key (made once, mode 0600)."""
    if settings.api_key:
        return settings.api_key, False
    path = settings.data_dir / API_KEY_FILE
    if path.exists():
        return path.read_text().strip(), True
    key = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key, True


@dataclass
class Gateway:
    settings: Settings
    db: Database
    configurations: ConfigurationStore
    dids: DidStore
    webhooks: WebhookDispatcher
    calls: CallControl
    pstn: SimulatedPstn
    sip_trunks: TrunkStore
    sip: SipService
    api_key: str
    development_key: bool
    dialogs: DialogControl
    media: MediaPlane
    rtp_sessions: SessionRegistry
    conferences: ConferenceControl
    bridges: MediaBridges
    recordings: RecordingControl
    files: FileLibrary
    url_audio: UrlAudio
    audio_cache: AudioCache
    tts: SpeechSynthesizer
    actions: ActionControl
    detection: MachineDetection
    webrtc_tokens: TokenIssuer
    webrtc_signalling: Signalling
    webrtc: WebRtcAdapter
    api: FastAPI | None = None

    @classmethod
    def build(cls, settings: Settings) -> Gateway:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        db.create_all()
        configurations = ConfigurationStore(db)
        dids = DidStore(db)
        webhooks = WebhookDispatcher(db, settings)
        calls = CallControl(SqlLegStore(db), webhooks, configurations, dids)
        dialogs = DialogControl(calls, SqlDialogStore(db), webhooks)
        media = MediaPlane()
        bridges = MediaBridges(calls, media, bypass=settings.media_bypass)
        dialogs.on_bridge = lambda parent, child: bridges.join(parent.id, child.id)
        dialogs.on_unbridge = lambda parent, child: bridges.part(parent.id, child.id)
        dialogs.on_play = lambda leg, source: bridges.play(leg.id, source)
        dialogs.on_unplay = lambda leg, source: bridges.unplay(leg.id, source)
        dialogs.ringback_tone = ringback_tone(settings.ringback_tone)
        conferences = ConferenceControl(
            calls,
            SqlConferenceStore(db),
            webhooks,
            configurations,
            media,
            dialog_open=lambda dialog_id: not dialogs.get(dialog_id).state.is_final,
            ringback_tone=dialogs.ringback_tone,
        )
        recordings = RecordingControl(
            calls,
            dialogs,
            bridges,
            SqlRecordingStore(db),
            webhooks,
            Path(settings.data_dir) / "recordings",
            conferences=conferences,
        )
        audio_cache = AudioCache(settings.audio_cache_bytes)
        files = FileLibrary(
            SqlFileStore(db),
            Path(settings.data_dir) / "files",
            audio_cache,
            max_bytes=settings.file_max_bytes,
            retention=timedelta(days=settings.file_retention_days),
        )
        url_audio = UrlAudio(audio_cache, settings.url_fetch_timeout, settings.url_fetch_max_bytes)
        tts = SpeechSynthesizer()
        content = ContentLoader(files, recordings, url_audio, tts, audio_cache)
        actions = ActionControl(calls, dialogs, conferences, bridges, content, webhooks)
        detection = MachineDetection(calls, bridges, conferences, webhooks)
        rtp_sessions = SessionRegistry()
        numbers = default_plan() if settings.pstn_default_plan else []
        numbers += [
            SimulatedNumber.build(n["number"], n["behaviour"], n.get("options"))
            for n in settings.pstn_numbers
        ]
        # With a carrier, numbers the simulator does not have leave through it.
        pstn = SimulatedPstn(calls, numbers, claim_all=not settings.carrier_uri, files=files)
        sip_trunks = TrunkStore(db, settings.sip_realm)
        sip = SipService(settings, calls, sip_trunks, rtp_sessions)
        for entry in settings.dids:
            config_id = entry["callsConfigurationId"]
            if not configurations.exists(config_id):
                configurations.create(CallsConfiguration(config_id, config_id))
            dids.link(Did(str(entry["number"]).lstrip("+"), config_id))
        api_key, development = load_or_create_api_key(settings)
        webrtc_tokens = TokenIssuer(
            api_key, settings.webrtc_token_ttl, settings.webrtc_token_max_ttl
        )
        webrtc_signalling = Signalling(webrtc_tokens)
        use_host_addresses(
            [a.strip() for a in settings.webrtc_host_addresses.split(",") if a.strip()]
        )
        ice = IceSettings.parse(
            settings.webrtc_ice_servers,
            settings.webrtc_turn_username,
            settings.webrtc_turn_password,
        )
        webrtc = WebRtcAdapter(
            calls,
            webrtc_signalling,
            ice,
            settings.webrtc_calls_configuration_id,
            settings.webrtc_media_timeout,
        )
        gateway = cls(
            settings,
            db,
            configurations,
            dids,
            webhooks,
            calls,
            pstn,
            sip_trunks,
            sip,
            api_key,
            development,
            dialogs,
            media,
            rtp_sessions,
            conferences,
            bridges,
            recordings,
            files,
            url_audio,
            audio_cache,
            tts,
            actions,
            detection,
            webrtc_tokens,
            webrtc_signalling,
            webrtc,
        )
        routers = [pstn_router, sip_trunks_router, webrtc_token_router]
        gateway.api = create_api(gateway, ApiKeyAuth(api_key, API_USERNAME), routers)
        # The signalling socket authenticates with its own token, not the API key.
        gateway.api.include_router(webrtc_socket_router)
        gateway.api.include_router(web_router)  # the softphone's static files: no secrets
        return gateway

    async def start(self) -> None:
        ended = self.calls.recover()
        if ended:
            log.warning("ended %d calls left open by the previous run", ended)
        ended = self.dialogs.recover()
        if ended:
            log.warning("ended %d dialogs left open by the previous run", ended)
        ended = self.conferences.recover()
        if ended:
            log.warning("finished %d conferences left open by the previous run", ended)
        ended = self.recordings.recover()
        if ended:
            log.warning("%d recordings were cut short by the end of the previous run", ended)
        self.files.start()
        await self.webhooks.start()
        await self.sip.start()

    async def stop(self) -> None:
        await self.pstn.close()
        await self.dialogs.close()  # stops propagating; ending the calls below ends the dialogs
        await self.conferences.close()  # likewise: the calls' ends finish the conferences
        await self.bridges.settled()  # no endpoint left half-way to or from bypass
        await self.calls.close()  # hangs up live calls while the SIP side can still say BYE
        await self.webrtc.close()  # peer connections left half-made, and the sockets
        await self.recordings.close()  # the calls' ends stopped them: finish the files
        await self.actions.close()  # likewise: only loads in flight are left to cancel
        await self.detection.close()
        self.files.close()
        await self.audio_cache.close()  # loads in flight end before their HTTP client
        await self.url_audio.close()
        await self.sip.stop()
        self.media.close()
        await self.webhooks.stop()
        self.db.close()
