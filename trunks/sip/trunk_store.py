"""SIP trunks (``/calls/1/sip-trunks``): who may send us calls, and where we send theirs.

Two kinds are served. A STATIC trunk is trusted by the source address of its requests and is
called at its destination hosts. A REGISTERED trunk registers under a username the gateway
issues; its password is shown once and kept only as digest HA1 values for our realm, so the
registrar can check MD5 and SHA-256 challenges while the store never holds the secret.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row

from gateway.store.db import Database, metadata
from trunks.sip.digest import StoredHA1, ha1

STATIC = "STATIC"
REGISTERED = "REGISTERED"
ENABLED = "ENABLED"
DISABLED = "DISABLED"
DEFAULT_REALM = "voice-gateway"
PASSWORD_BYTES = 18  # token_urlsafe: 24 characters

trunks_table = Table(
    "sip_trunks",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(24), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("location", String(32)),
    Column("international_calls_allowed", Boolean, nullable=False),
    Column("channel_limit", Integer, nullable=False),
    Column("billing_package_type", String(16), nullable=False),
    Column("billing_country_code", String(8)),
    Column("billing_address_id", String(64)),
    Column("tls", Boolean, nullable=False),
    Column("codecs", JSON, nullable=False),
    Column("dtmf", String(16), nullable=False),
    Column("fax", String(16), nullable=False),
    Column("number_format", String(16), nullable=False),
    Column("anonymization", String(32), nullable=False),
    Column("source_hosts", JSON, nullable=False),
    Column("destination_hosts", JSON, nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("sip_options_enabled", Boolean, nullable=False),
    Column("invite_authentication", Boolean, nullable=False),
    Column("admin_status", String(16), nullable=False),
    Column("username", String(64), unique=True),
    Column("realm", String(128)),
    Column("ha1_md5", String(32)),
    Column("ha1_sha256", String(64)),
)

# The source IPs of STATIC trunks, normalised, so an inbound request maps to one trunk only.
source_ips_table = Table(
    "sip_trunk_source_ips",
    metadata,
    Column("ip", String(45), primary_key=True),
    Column(
        "trunk_id",
        String(24),
        ForeignKey("sip_trunks.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
)


class InvalidTrunk(ValueError):
    """Refused configuration; ``errors`` maps API field names (``destinationHosts[1]``) to why."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class Destination(NamedTuple):
    """A parsed destination host: ``port`` None means the default, 0 means an SRV lookup."""

    host: str
    port: int | None


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PORT = re.compile(r"\d{1,5}")
_BRACKETED = re.compile(r"\[([^\]]+)\]:(\d{1,5})")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_domain(text: str) -> bool:
    labels = text.split(".")
    # A numeric last label is a mistyped IP address, never a real top-level domain.
    return (
        len(text) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def check_source_host(text: str) -> None:
    """Source hosts are an IP address or a domain name, without a port (spec)."""
    if _ip(text) is None and not _is_domain(text):
        raise ValueError("must be an IP address or a domain name, without a port")


def parse_destination(text: str) -> Destination:
    """``ip:port``, ``[ipv6]:port``, ``domain`` or ``domain:port``; port 1025-65535, or 0 (SRV).

    The spec lists exactly these forms: an IP address always carries its port.
    """
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        host, port_text = bracketed.groups()
        if not isinstance(_ip(host), ipaddress.IPv6Address):
            raise ValueError("brackets must enclose an IPv6 address")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif _ip(text) is not None:
        raise ValueError("an IP address needs a port, e.g. 203.0.113.5:5060")
    else:
        host, port_text = text, None
    address = _ip(host)
    if address is None and not _is_domain(host):
        raise ValueError("must be an IP address with a port, or a domain name with optional port")
    if port_text is None:
        return Destination(host, None)
    port = int(port_text) if _PORT.fullmatch(port_text) else -1
    if port == 0 and address is not None:
        raise ValueError("port 0 (SRV lookup) needs a domain name")
    if port != 0 and not 1025 <= port <= 65535:
        raise ValueError("port must be 1025-65535, or 0 for an SRV lookup")
    return Destination(host, port)


def _ip_key(text: str) -> str | None:
    address = _ip(text)
    return str(address) if address is not None else None


@dataclass(frozen=True)
class BillingPackage:
    """Accepted and echoed; a self-hosted gateway bills nothing."""

    package_type: str
    country_code: str | None = None
    address_id: str | None = None


@dataclass(frozen=True)
class TrunkConfig:
    """What the API sets: hosts matter for STATIC only, invite_authentication for REGISTERED."""

    type: str
    name: str
    channel_limit: int
    billing_package: BillingPackage
    location: str | None = None
    international_calls_allowed: bool = False
    tls: bool = False
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    dtmf: str = "RFC2833"
    fax: str = "NONE"
    number_format: str = "E164"
    anonymization: str = "NONE"
    source_hosts: tuple[str, ...] = ()
    destination_hosts: tuple[str, ...] = ()
    strategy: str = "FAILOVER"
    sip_options_enabled: bool = False
    invite_authentication: bool = False

    def problems(self) -> dict[str, list[str]]:
        """Everything wrong with the hosts, keyed by API field name; empty when valid."""
        found: dict[str, list[str]] = {}
        if self.type not in (STATIC, REGISTERED):
            found["type"] = [f"{self.type} is not supported by this gateway"]
        if self.type != STATIC:
            return found
        if not self.source_hosts and not self.destination_hosts:
            message = "sourceHosts and destinationHosts must not both be empty"
            found["sourceHosts"] = [message]
            found["destinationHosts"] = [message]
        for index, host in enumerate(self.source_hosts):
            try:
                check_source_host(host)
            except ValueError as error:
                found[f"sourceHosts[{index}]"] = [str(error)]
        for index, host in enumerate(self.destination_hosts):
            try:
                parse_destination(host)
            except ValueError as error:
                found[f"destinationHosts[{index}]"] = [str(error)]
        return found


@dataclass(frozen=True)
class SipTrunk:
    id: str
    config: TrunkConfig
    admin_status: str = ENABLED
    username: str | None = None  # REGISTERED only, as are the realm and HA1 values
    realm: str | None = None
    ha1_md5: str | None = field(default=None, repr=False)
    ha1_sha256: str | None = field(default=None, repr=False)

    @property
    def type(self) -> str:
        return self.config.type

    @property
    def enabled(self) -> bool:
        return self.admin_status == ENABLED

    @property
    def credentials(self) -> StoredHA1 | None:
        """What :class:`trunks.sip.digest.DigestServer` checks a REGISTERED trunk's digest with."""
        if self.ha1_md5 is None or self.ha1_sha256 is None:
            return None
        return StoredHA1({"MD5": self.ha1_md5, "SHA-256": self.ha1_sha256})

    def destinations(self) -> list[Destination]:
        return [parse_destination(host) for host in self.config.destination_hosts]


def _config_values(config: TrunkConfig) -> dict[str, Any]:
    return {
        "type": config.type,
        "name": config.name,
        "location": config.location,
        "international_calls_allowed": config.international_calls_allowed,
        "channel_limit": config.channel_limit,
        "billing_package_type": config.billing_package.package_type,
        "billing_country_code": config.billing_package.country_code,
        "billing_address_id": config.billing_package.address_id,
        "tls": config.tls,
        "codecs": list(config.codecs),
        "dtmf": config.dtmf,
        "fax": config.fax,
        "number_format": config.number_format,
        "anonymization": config.anonymization,
        "source_hosts": list(config.source_hosts),
        "destination_hosts": list(config.destination_hosts),
        "strategy": config.strategy,
        "sip_options_enabled": config.sip_options_enabled,
        "invite_authentication": config.invite_authentication,
    }


def _trunk(row: Row) -> SipTrunk:
    config = TrunkConfig(
        type=row.type,
        name=row.name,
        location=row.location,
        international_calls_allowed=row.international_calls_allowed,
        channel_limit=row.channel_limit,
        billing_package=BillingPackage(
            row.billing_package_type, row.billing_country_code, row.billing_address_id
        ),
        tls=row.tls,
        codecs=tuple(row.codecs),
        dtmf=row.dtmf,
        fax=row.fax,
        number_format=row.number_format,
        anonymization=row.anonymization,
        source_hosts=tuple(row.source_hosts),
        destination_hosts=tuple(row.destination_hosts),
        strategy=row.strategy,
        sip_options_enabled=row.sip_options_enabled,
        invite_authentication=row.invite_authentication,
    )
    return SipTrunk(
        row.id, config, row.admin_status, row.username, row.realm, row.ha1_md5, row.ha1_sha256
    )


class TrunkStore:
    """SIP trunks in creation order; HA1 values are computed for ``realm``."""

    def __init__(self, db: Database, realm: str = DEFAULT_REALM) -> None:
        self._db = db
        self.realm = realm

    # -- the API's side --------------------------------------------------------------------

    def create(self, config: TrunkConfig) -> tuple[SipTrunk, str | None]:
        """The new trunk and, for REGISTERED, its plaintext password (never stored)."""
        _check(config)
        trunk = SipTrunk(secrets.token_hex(12), config)
        password = None
        if config.type == REGISTERED:
            password = _new_password()
            trunk = self._with_password(replace(trunk, username=str(uuid.uuid4())), password)
        with self._db.begin() as conn:
            conn.execute(
                trunks_table.insert().values(
                    id=trunk.id,
                    admin_status=trunk.admin_status,
                    username=trunk.username,
                    realm=trunk.realm,
                    ha1_md5=trunk.ha1_md5,
                    ha1_sha256=trunk.ha1_sha256,
                    **_config_values(config),
                )
            )
            _index_source_ips(conn, trunk.id, config)
        return trunk, password

    def get(self, trunk_id: str) -> SipTrunk | None:
        with self._db.begin() as conn:
            row = conn.execute(select(trunks_table).where(trunks_table.c.id == trunk_id)).first()
        return _trunk(row) if row else None

    def all(self) -> list[SipTrunk]:
        with self._db.begin() as conn:
            rows = conn.execute(select(trunks_table).order_by(trunks_table.c.seq)).all()
        return [_trunk(row) for row in rows]

    def page(self, offset: int, limit: int, name: str | None = None) -> tuple[list[SipTrunk], int]:
        where = [trunks_table.c.name == name] if name is not None else []
        with self._db.begin() as conn:
            total = conn.execute(
                select(func.count()).select_from(trunks_table).where(*where)
            ).scalar_one()
            rows = conn.execute(
                select(trunks_table)
                .where(*where)
                .order_by(trunks_table.c.seq)
                .offset(offset)
                .limit(limit)
            ).all()
        return [_trunk(row) for row in rows], total

    def update(self, trunk_id: str, config: TrunkConfig) -> SipTrunk | None:
        current = self.get(trunk_id)
        if current is None:
            return None
        if config.type != current.type:
            raise InvalidTrunk({"type": [f"cannot be changed from {current.type}"]})
        _check(config)
        with self._db.begin() as conn:
            conn.execute(
                update(trunks_table)
                .where(trunks_table.c.id == trunk_id)
                .values(**_config_values(config))
            )
            conn.execute(delete(source_ips_table).where(source_ips_table.c.trunk_id == trunk_id))
            _index_source_ips(conn, trunk_id, config)
        return replace(current, config=config)

    def delete(self, trunk_id: str) -> SipTrunk | None:
        trunk = self.get(trunk_id)
        if trunk is not None:
            with self._db.begin() as conn:
                conn.execute(delete(trunks_table).where(trunks_table.c.id == trunk_id))
        return trunk

    def reset_password(self, trunk_id: str) -> tuple[SipTrunk, str] | None:
        """A fresh password for a REGISTERED trunk; the old one stops working at once."""
        trunk = self.get(trunk_id)
        if trunk is None:
            return None
        if trunk.type != REGISTERED:
            raise InvalidTrunk(
                {"type": [f"is {trunk.type}: only REGISTERED trunks have a password"]}
            )
        password = _new_password()
        trunk = self._with_password(trunk, password)
        self._set(trunk_id, realm=trunk.realm, ha1_md5=trunk.ha1_md5, ha1_sha256=trunk.ha1_sha256)
        return trunk, password

    def set_admin_status(self, trunk_id: str, status: str) -> SipTrunk | None:
        if status not in (ENABLED, DISABLED):
            raise InvalidTrunk({"adminStatus": ["must be ENABLED or DISABLED"]})
        trunk = self.get(trunk_id)
        if trunk is None:
            return None
        self._set(trunk_id, admin_status=status)
        return replace(trunk, admin_status=status)

    # -- the SIP layer's side --------------------------------------------------------------

    def by_username(self, username: str) -> SipTrunk | None:
        """The REGISTERED trunk registering as ``username`` (DISABLED ones too: check .enabled)."""
        with self._db.begin() as conn:
            row = conn.execute(
                select(trunks_table).where(trunks_table.c.username == username)
            ).first()
        return _trunk(row) if row else None

    def for_source_host(self, ip: str) -> SipTrunk | None:
        """The STATIC trunk listing ``ip`` among its source hosts; domains never match here."""
        key = _ip_key(ip)
        if key is None:
            return None
        with self._db.begin() as conn:
            row = conn.execute(
                select(trunks_table)
                .join(source_ips_table, source_ips_table.c.trunk_id == trunks_table.c.id)
                .where(source_ips_table.c.ip == key)
            ).first()
        return _trunk(row) if row else None

    # -- internals -------------------------------------------------------------------------

    def _with_password(self, trunk: SipTrunk, password: str) -> SipTrunk:
        assert trunk.username is not None
        return replace(
            trunk,
            realm=self.realm,
            ha1_md5=ha1(trunk.username, self.realm, password, "MD5"),
            ha1_sha256=ha1(trunk.username, self.realm, password, "SHA-256"),
        )

    def _set(self, trunk_id: str, **values: Any) -> None:
        with self._db.begin() as conn:
            conn.execute(update(trunks_table).where(trunks_table.c.id == trunk_id).values(values))


def _new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _check(config: TrunkConfig) -> None:
    problems = config.problems()
    if problems:
        raise InvalidTrunk(problems)


def _index_source_ips(conn: Connection, trunk_id: str, config: TrunkConfig) -> None:
    """Record the trunk's source IPs; one already owned by another trunk is refused."""
    keys = {
        key: index
        for index, host in reversed(list(enumerate(config.source_hosts)))
        if (key := _ip_key(host)) is not None
    }
    if not keys:
        return
    taken = conn.execute(
        select(source_ips_table).where(
            source_ips_table.c.ip.in_(list(keys)), source_ips_table.c.trunk_id != trunk_id
        )
    ).all()
    if taken:
        raise InvalidTrunk(
            {
                f"sourceHosts[{keys[row.ip]}]": [f"is already a source of SIP trunk {row.trunk_id}"]
                for row in taken
            }
        )
    conn.execute(source_ips_table.insert(), [{"ip": key, "trunk_id": trunk_id} for key in keys])
