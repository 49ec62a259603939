"""Shared fixtures: an in-process gateway behind an ASGI client, and a real `gateway serve`."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.settings import Settings

API_KEY = "test-key-0123456789"
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port never handed out before in this run, so that two parts of one test
    (say a SIPp started before the gateway binds) are never given the same port."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def fast_settings(data_dir: Path, **overrides) -> Settings:
    """Settings for tests: loopback, a fixed key, webhook retries in milliseconds."""
    values = dict(
        http_port=free_port(),
        sip_port=free_port(),
        sip_tls_port=free_port(),
        data_dir=data_dir,
        api_key=API_KEY,
        webhook_retry_initial=0.05,
        webhook_retry_max=0.5,
        webhook_retry_window=60.0,
        webhook_timeout=2.0,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "data")


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    gw = Gateway.build(settings)
    await gw.start()
    yield gw
    await gw.stop()


@pytest.fixture
async def api(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway's HTTP API in process, authenticated."""
    transport = httpx.ASGITransport(app=gateway.api)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://gateway",
        headers={"Authorization": f"App {API_KEY}"},
    ) as client:
        yield client


@pytest.fixture
def reference() -> Path:
    if not (REFERENCE / "openapi" / "infobip-voice-openapi.json").exists():
        pytest.skip(f"the Calls API reference is not beside this clone ({REFERENCE})")
    return REFERENCE


@dataclass
class ServedGateway:
    base_url: str
    api_key: str
    data_dir: Path
    process: subprocess.Popen
    output: list[str]


def start_gateway_process(
    data_dir: Path,
    env_overrides: dict[str, str] | None = None,
    port: int | None = None,
    timeout: float = 20,
) -> ServedGateway:
    """Run `python -m gateway serve` and wait for its `ready` line. Ports picked here can be
    taken by another process before the gateway binds them (a client's ephemeral port, say):
    then it is started again on new ones."""
    for _ in range(2 if port is None else 0):
        try:
            return _start_gateway_process(data_dir, env_overrides, port or free_port(), timeout)
        except _PortTaken:
            continue
    return _start_gateway_process(data_dir, env_overrides, port or free_port(), timeout)


class _PortTaken(RuntimeError):
    pass


def _start_gateway_process(
    data_dir: Path, env_overrides: dict[str, str] | None, port: int, timeout: float
) -> ServedGateway:
    env = {
        **os.environ,
        "GATEWAY_HTTP_HOST": "127.0.0.1",
        "GATEWAY_HTTP_PORT": str(port),
        "GATEWAY_SIP_PORT": str(free_port()),
        "GATEWAY_SIP_TLS_PORT": str(free_port()),
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_API_KEY": API_KEY,
        "GATEWAY_WEBHOOK_RETRY_INITIAL": "0.05",
        "GATEWAY_WEBHOOK_RETRY_MAX": "0.5",
        "GATEWAY_LOG_LEVEL": "warning",
        **(env_overrides or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if line.startswith("gateway ready on "):  # not just "ready": "already in use" has it
            selector.close()
            # Keep draining, so that a chatty gateway never blocks on a full pipe.
            threading.Thread(target=_drain, args=(process, output), daemon=True).start()
            return ServedGateway(f"http://127.0.0.1:{port}", API_KEY, data_dir, process, output)
    process.kill()
    process.wait()
    text = "".join(output)
    if "address already in use" in text:
        raise _PortTaken(text)
    raise RuntimeError("gateway did not become ready:\n" + text)


def _drain(process: subprocess.Popen, output: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)


def stop_gateway_process(served: ServedGateway) -> int:
    served.process.terminate()
    try:
        return served.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.process.kill()
        raise


@pytest.fixture
def served_gateway(tmp_path: Path) -> Iterator[ServedGateway]:
    served = start_gateway_process(tmp_path / "data")
    yield served
    stop_gateway_process(served)
