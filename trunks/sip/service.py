"""The SIP side of the gateway, assembled from settings: listeners, registrar, authentication
and the SIP leg adapter. The composition root builds one and starts and stops it."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

from gateway.core.calls import CallControl
from gateway.media.metrics import SessionRegistry
from gateway.media.ports import PortAllocator
from trunks.sip.adapter import SipTrunkAdapter, TrunkDirectory
from trunks.sip.auth import SipAuthenticator
from trunks.sip.carrier import Carrier, CarrierLegs, UpstreamRegistration
from trunks.sip.digest import DigestServer, StoredHA1
from trunks.sip.endpoint import Listener, SipEndpoint
from trunks.sip.media import SipMedia
from trunks.sip.registrar import LocationService, Registrar
from trunks.sip.routing import OptionsMonitor, TrunkHealth
from trunks.sip.throttle import AuthThrottle
from trunks.sip.uri import SipUri

log = logging.getLogger(__name__)


def server_tls(cert: Path, key: Path) -> ssl.SSLContext | None:
    if not (cert.exists() and key.exists()):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class SipService:
    def __init__(
        self,
        settings: Any,
        control: CallControl,
        trunks: TrunkDirectory,
        registry: SessionRegistry,
    ) -> None:
        self.settings = settings
        self.trunks = trunks
        self.endpoint = SipEndpoint()
        self.location = LocationService()
        algorithms = tuple(
            a.strip() for a in settings.sip_digest_algorithms.split(",") if a.strip()
        )
        self.digest = DigestServer(settings.sip_realm, algorithms=algorithms)
        self.throttle = AuthThrottle()
        self.authenticator = SipAuthenticator(self.digest, self.throttle, self._credentials)
        self.registrar = Registrar(self.authenticator, self.location)
        self.endpoint.on_register = self.registrar.handle
        self.media = SipMedia(
            PortAllocator.from_settings(settings),
            settings.media_address or settings.sip_host,
            registry,
        )
        self.health = TrunkHealth()
        self.options = OptionsMonitor(
            self.endpoint, trunks.all, self.health, settings.sip_options_interval
        )
        self.adapter = SipTrunkAdapter(
            control,
            self.endpoint,
            trunks,
            self.location,
            self.authenticator,
            self.media,
            self.health,
        )
        self.upstream: UpstreamRegistration | None = None
        if settings.carrier_uri:
            carrier = Carrier(
                SipUri.parse(settings.carrier_uri),
                settings.carrier_username,
                settings.carrier_password,
                settings.carrier_domain,
            )
            self.adapter.carrier = CarrierLegs(self.adapter, carrier)
            control.register(self.adapter.carrier)
            if settings.carrier_register:
                self.upstream = UpstreamRegistration(
                    self.endpoint, carrier, settings.carrier_expires
                )

    def _credentials(self, username: str) -> StoredHA1 | None:
        trunk = self.trunks.by_username(username)
        return trunk.credentials if trunk is not None else None

    async def start(self) -> None:
        host, port = self.settings.sip_host, self.settings.sip_port
        listeners = [
            Listener(name.strip().upper(), host, port)
            for name in self.settings.sip_transports.split(",")
            if name.strip()
        ]
        tls = server_tls(Path(self.settings.sip_tls_cert), Path(self.settings.sip_tls_key))
        if tls is not None:
            listeners.append(Listener("TLS", host, self.settings.sip_tls_port, tls))
        else:
            log.info(
                "SIP over TLS is off: no certificate at %s (make certs)", self.settings.sip_tls_cert
            )
        await self.endpoint.start(listeners)
        self.options.start()
        if self.upstream is not None:
            self.upstream.start()
        log.info("SIP listening on %s", self.endpoint.transport.addresses)

    async def stop(self) -> None:
        await self.options.stop()
        if self.upstream is not None:
            await self.upstream.stop()
        await self.endpoint.close()
        self.media.close_all()

    def trunk_runtime(self, trunk_id: str) -> tuple[str, int]:
        """(registration status, active calls) of one trunk, for the status API."""
        trunk = self.trunks.get(trunk_id)
        if trunk is None:
            return "UNREGISTERED", 0
        registered = trunk.type == "REGISTERED" and bool(self.location.lookup(trunk.username or ""))
        return ("REGISTERED" if registered else "UNREGISTERED"), self.adapter.active_calls(trunk_id)
