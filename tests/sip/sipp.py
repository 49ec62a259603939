"""Plumbing for the SIPp tests: a real gateway in process, its Calls API, a webhook recorder,
and SIPp runs on loopback whose outcome (exit code, statistics, error log) can be asserted on.

SIPp runs as a subprocess of the test's event loop (``asyncio.create_subprocess_exec``): the
gateway lives in that same loop, so nothing here ever blocks it.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from gateway.app import Gateway
from gateway.settings import Settings
from gateway.testing.app import prepare_app
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.conftest import API_KEY, fast_settings, free_port

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CERT = ROOT / "certs" / "server.pem"
KEY = ROOT / "certs" / "server.key"
CA = ROOT / "certs" / "ca.pem"
SIPP = shutil.which("sipp")
T = TypeVar("T")

FINAL = ("CALL_FINISHED", "CALL_FAILED")
CONFIG_ID = "sipp-config"
DID = "441134960100"
CALLER = "441134960999"
TRUNKS = "/calls/1/sip-trunks"


def free_udp_port() -> int:
    """A port free for both UDP and TCP on loopback (SIPp binds one of them, sometimes both)."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


# -- SIPp --------------------------------------------------------------------------------------


@dataclass
class SippResult:
    name: str
    returncode: int | None
    stdout: str
    stderr: str
    errors: str  # the -trace_err log: every unexpected message
    stats: dict[str, str] = field(default_factory=dict)  # the last row of the -trace_stat CSV
    messages: str = ""  # the -trace_msg log: every message sent and received

    def count(self, name: str) -> int:
        """A cumulative counter of the statistics, e.g. ``SuccessfulCall`` or ``FailedCall``."""
        return int(self.stats.get(f"{name}(C)", "0") or 0)

    def describe(self) -> str:
        interesting = {
            k: v
            for k, v in self.stats.items()
            if k.endswith("(C)") and v not in ("", "0") and not k.startswith("Retransmissions")
        }
        return (
            f"SIPp {self.name} exited with {self.returncode}\n"
            f"statistics: {interesting}\n"
            f"--- stdout (tail)\n{self.stdout[-3000:]}\n"
            f"--- stderr\n{self.stderr[-3000:]}\n"
            f"--- error log\n{self.errors[-6000:] or '(empty)'}\n"
            f"--- messages (tail)\n{self.messages[-8000:]}"
        )

    def assert_ok(self, calls: int = 1) -> None:
        """Exit code 0 and every call successful, nothing unexpected received."""
        assert self.returncode == 0, self.describe()
        assert self.count("SuccessfulCall") == calls, self.describe()
        assert self.count("FailedCall") == 0, self.describe()


class Sipp:
    """One SIPp process: ``await start()``, then ``await wait()`` for its :class:`SippResult`.

    ``options`` are extra command-line arguments (``-s``, ``-au``, ``-set``...). The working
    directory is per run, so the log files of concurrent runs never collide.
    """

    def __init__(
        self,
        scenario: str,
        cwd: Path,
        *,
        remote: str | None = None,
        transport: str = "u1",
        port: int | None = None,
        calls: int = 1,
        timeout: float = 15,
        options: list[str] | tuple[str, ...] = (),
    ) -> None:
        if SIPP is None:
            raise RuntimeError("SIPp is not installed (apt-get install sip-tester)")
        self.scenario = scenario
        self.port = port or free_udp_port()
        self.cwd = cwd / f"{scenario}-{self.port}"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.transport = transport
        self.server = remote is None  # a UAS: the gateway sends to it
        self.argv = [
            SIPP,
            *([remote] if remote else []),
            "-sf", str(SCENARIOS / f"{scenario}.xml"),
            "-nostdin",
            "-timeout", f"{int(timeout)}s",
            "-timeout_error",
            "-m", str(calls),
            "-i", "127.0.0.1",
            "-p", str(self.port),
            "-t", transport,
            "-trace_err", "-error_file", "errors.log",
            "-trace_stat", "-stf", "stats.csv", "-fd", "1",
            "-trace_msg", "-message_file", "messages.log",
            *options,
        ]  # fmt: skip
        self.process: asyncio.subprocess.Process | None = None
        self.result: SippResult | None = None

    async def start(self) -> Sipp:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        if self.server:
            await self._listening()
        return self

    async def _listening(self, timeout: float = 5) -> None:
        """A UAS must be bound before the gateway sends to it: wait until its port is taken."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        kind = socket.SOCK_STREAM if self.transport.startswith("t") else socket.SOCK_DGRAM
        while loop.time() < deadline:
            if self.process.returncode is not None:
                return  # it died: wait() reports why
            if _port_taken(self.port, kind):
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"SIPp {self.scenario} never bound port {self.port}")

    async def wait(self, timeout: float | None = None) -> SippResult:
        assert self.process is not None
        try:
            stdout, stderr = await asyncio.wait_for(
                self.process.communicate(), timeout or self.timeout + 10
            )
        except TimeoutError:
            self.process.kill()
            stdout, stderr = await self.process.communicate()
        self.result = SippResult(
            self.scenario,
            self.process.returncode,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
            _read(self.cwd / "errors.log"),
            _last_stats(self.cwd / "stats.csv"),
            self.messages(),
        )
        return self.result

    async def guard(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` (the gateway side); if SIPp exits first, fail with its story."""
        assert self.process is not None
        task = asyncio.ensure_future(awaitable)
        exited = asyncio.ensure_future(self.process.wait())
        try:
            await asyncio.wait([task, exited], return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        if not task.done():
            task.cancel()
            result = await self.wait()
            raise AssertionError(f"SIPp ended before the gateway side did\n{result.describe()}")
        return task.result()

    async def __aenter__(self) -> Sipp:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Kill it if it still runs (a test that failed half-way)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def messages(self) -> str:
        """Every message SIPp sent and received (-trace_msg), for assertions and diagnosis."""
        return _read(self.cwd / "messages.log")


def _port_taken(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _last_stats(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


async def run_sipp(*args: Any, **kwargs: Any) -> SippResult:
    sipp = Sipp(*args, **kwargs)
    await sipp.start()
    try:
        return await sipp.wait()
    finally:
        await sipp.stop()


# -- the gateway and its API -------------------------------------------------------------------


def sipp_settings(data_dir: Path, **overrides: Any) -> Settings:
    """SIPp answers only the first digest challenge, and only MD5: offer MD5 first."""
    defaults = {"sip_digest_algorithms": "MD5,SHA-256", "sip_tls_cert": CERT, "sip_tls_key": KEY}
    return fast_settings(data_dir, **(defaults | overrides))


@dataclass
class World:
    """A running gateway, its API, and a recorder subscribed to every call event of CONFIG_ID."""

    gateway: Gateway
    api: httpx.AsyncClient
    recorder: WebhookRecorder
    tmp: Path

    @property
    def sip_port(self) -> int:
        return self.gateway.settings.sip_port

    @property
    def remote(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    @property
    def tls_remote(self) -> str:
        return f"127.0.0.1:{self.gateway.settings.sip_tls_port}"

    async def registered_trunk(self, name: str = "pbx") -> dict[str, Any]:
        body = {
            "type": "REGISTERED",
            "name": name,
            "channelLimit": 20,
            "billingPackage": {"packageType": "METERED"},
        }
        response = await self.api.post(TRUNKS, json=body)
        assert response.status_code == 202, response.text
        return response.json()

    async def static_trunk(
        self, *, source_hosts: list[str] = (), destination_hosts: list[str] = ()
    ) -> dict[str, Any]:
        body = {
            "type": "STATIC",
            "name": "static",
            "channelLimit": 20,
            "billingPackage": {"packageType": "METERED"},
            "sourceHosts": list(source_hosts),
            "destinationHosts": list(destination_hosts),
        }
        response = await self.api.post(TRUNKS, json=body)
        assert response.status_code == 202, response.text
        return response.json()

    async def trunk_status(self, trunk_id: str) -> dict[str, Any]:
        response = await self.api.get(f"{TRUNKS}/{trunk_id}/status")
        assert response.status_code == 200, response.text
        return response.json()

    async def dial(self, trunk_id: str, connect_timeout: int = 10, user: str = "alice") -> str:
        body = {
            "endpoint": {"type": "SIP", "username": user, "sipTrunkId": trunk_id},
            "from": CALLER,
            "connectTimeout": connect_timeout,
            "callsConfigurationId": CONFIG_ID,
        }
        response = await self.api.post("/calls/1/calls", json=body)
        assert response.status_code in (200, 201), response.text
        call = response.json()
        assert call["state"] == "CALLING", call
        return call["id"]

    async def received(self, index: int = 0, timeout: float = 10) -> str:
        """The id of the ``index``-th call the gateway received (CALL_RECEIVED, in order)."""
        events = await self.recorder.wait_for(count=index + 1, types=["CALL_RECEIVED"],
                                              timeout=timeout)  # fmt: skip
        return events[index]["properties"]["call"]["id"]

    async def answer(self, call_id: str) -> None:
        response = await self.api.post(f"/calls/1/calls/{call_id}/answer", json={})
        assert response.status_code == 200, response.text

    async def dialog(self, parent: str, trunk_id: str, user: str = "bob", **child: Any) -> str:
        """A dialog from the call ``parent`` to ``user`` behind a SIP trunk (``child``: more
        fields of the child call request): its child's id."""
        endpoint = {"type": "SIP", "username": user, "sipTrunkId": trunk_id}
        body = {"parentCallId": parent, "childCallRequest": {"endpoint": endpoint, **child}}
        created = await self.api.post("/calls/1/dialogs", json=body)
        assert created.status_code == 201, created.text
        return created.json()["childCall"]["id"]

    async def hangup(self, call_id: str, error_code: str | None = None) -> None:
        body = {"errorCode": error_code} if error_code else {}
        response = await self.api.post(f"/calls/1/calls/{call_id}/hangup", json=body)
        assert response.status_code == 200, response.text

    async def sequence(self, call_id: str, timeout: float = 10) -> list[dict[str, Any]]:
        """Every event of the call once its final one (CALL_FINISHED or CALL_FAILED) arrived."""
        await self.recorder.wait_for(
            call_id=call_id, predicate=lambda e: e.get("type") in FINAL, timeout=timeout
        )
        return self.recorder.events(call_id)

    def types(self, call_id: str) -> list[str]:
        return self.recorder.types(call_id)


def call_log(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The callLog of the final event (CALL_FINISHED or CALL_FAILED)."""
    return events[-1]["properties"]["callLog"]


def outcome(events: list[dict[str, Any]]) -> tuple[str, str, str]:
    """(state, errorCode name, hangupSource) of the call's final event."""
    log = call_log(events)
    return log["state"], log["errorCode"]["name"], log["hangupSource"]


@asynccontextmanager
async def running_world(tmp: Path, **overrides: Any) -> AsyncIterator[World]:
    settings = sipp_settings(tmp / "data", **overrides)
    gateway = Gateway.build(settings)
    await gateway.start()
    try:
        async with (
            WebhookRecorder() as recorder,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway.api),
                base_url="http://gateway",
                headers={"Authorization": f"App {API_KEY}"},
            ) as api,
        ):
            await prepare_app(api, recorder.url, CONFIG_ID, numbers=[DID])
            yield World(gateway, api, recorder, tmp)
    finally:
        await gateway.stop()


# -- a TCP to TLS relay: Debian's SIPp 3.6.1 is built without OpenSSL --------------------------


@asynccontextmanager
async def tls_relay(target_port: int, cafile: Path) -> AsyncIterator[int]:
    """Listen on a loopback TCP port; relay each connection's bytes over TLS to ``target_port``.

    SIPp speaks plain TCP to the relay and the gateway sees a real TLS connection, handshake,
    certificate and all; each message and response crosses the relay untouched.
    """
    context = ssl.create_default_context(cafile=str(cafile))
    pumps: set[asyncio.Task[None]] = set()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            with suppress(Exception):
                writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", target_port, ssl=context, server_hostname="127.0.0.1"
        )
        for task in (pump(reader, up_writer), pump(up_reader, writer)):
            pumps.add(asyncio.ensure_future(task))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await server.wait_closed()


# -- raw SIP over UDP, for the one-message checks ---------------------------------------------


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.queue.put_nowait(data)


@asynccontextmanager
async def udp_client(port: int) -> AsyncIterator[RawUdp]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Collector, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", port)
    )
    try:
        yield RawUdp(transport, protocol)  # type: ignore[arg-type]
    finally:
        transport.close()


@dataclass
class RawUdp:
    transport: asyncio.DatagramTransport
    protocol: _Collector

    @property
    def local_port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]

    async def exchange(self, message: str, timeout: float = 3) -> str:
        """Send one request; return the first final response (1xx skipped) as text."""
        self.transport.sendto(message.replace("\n", "\r\n").encode())
        async with asyncio.timeout(timeout):
            while True:
                text = (await self.protocol.queue.get()).decode(errors="replace")
                status = text.split(" ", 2)[1] if text.startswith("SIP/2.0 ") else ""
                if not status.startswith("1"):
                    return text


def status_of(response: str) -> int:
    return int(response.split(" ", 2)[1])
