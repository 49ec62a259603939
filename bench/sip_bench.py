"""``make bench-sip``: SIPp calls into a real `gateway serve` through the whole Calls API loop.

For each call: SIPp INVITEs a number linked to a configuration → CALL_RECEIVED reaches a small
webhook app → the app answers through ``POST /calls/1/calls/{id}/answer`` → 200 OK → SIPp holds
the call, then hangs up. The rate ramps up until calls fail; the table shows each step, the
highest rate with no failed call, and then a profile of the gateway at that rate.

Loopback only; every step is bounded in calls and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h11
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DID = "441134960100"
PROMPT_MS = 500  # an answer slower than this is queueing, not keeping up
KEY = "bench-key-0123456789"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AnsweringApp:
    """The voice app under load: answers every CALL_RECEIVED through the Calls API."""

    def __init__(self, api: httpx.AsyncClient, dialog_trunk: str | None = None) -> None:
        self.api = api
        self.dialog_trunk = dialog_trunk  # B2BUA run: a dialog to this trunk instead of answering
        self.port = 0
        self.answered = 0
        self.errors = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()  # the gateway's keep-alive connections: their handlers then return
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER)
        body = bytearray()
        self._writers.add(writer)
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        break
                    connection.receive_data(data)
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self._handle(bytes(body))
                    body.clear()
                    response = h11.Response(status_code=200, headers=[("content-length", "0")])
                    writer.write(connection.send(response) + connection.send(h11.EndOfMessage()))
                    await writer.drain()
                    connection.start_next_cycle()
                elif not isinstance(event, h11.Request):
                    break
        except (h11.ProtocolError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _handle(self, body: bytes) -> None:
        event = json.loads(body)
        if event.get("type") == "CALL_RECEIVED":
            task = asyncio.get_running_loop().create_task(self._answer(event["callId"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, call_id: str) -> None:
        if self.dialog_trunk is None:
            response = await self.api.post(f"/calls/1/calls/{call_id}/answer", json={})
        else:
            endpoint = {"type": "SIP", "username": "uas", "sipTrunkId": self.dialog_trunk}
            body = {"parentCallId": call_id, "childCallRequest": {"endpoint": endpoint}}
            response = await self.api.post("/calls/1/dialogs", json=body)
        if response.status_code in (200, 201):
            self.answered += 1
        else:
            self.errors += 1


def start_gateway(
    data_dir: Path, http_port: int, sip_port: int, profile: Path | None
) -> subprocess.Popen:
    env = {
        **os.environ,
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_API_KEY": KEY,
        "GATEWAY_HTTP_PORT": str(http_port),
        "GATEWAY_SIP_PORT": str(sip_port),
        "GATEWAY_SIP_TLS_PORT": str(free_port()),
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_PSTN_DEFAULT_PLAN": "false",
    }
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    command += ["-m", "gateway", "serve"]
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    for line in process.stdout:
        if "ready" in line:
            return process
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit("the gateway did not start")


async def configure(api: httpx.AsyncClient, app_port: int, uas_port: int | None) -> str:
    """The app's configuration, number, trunk (with the UAS as its destination in a B2BUA
    run) and subscription; returns the trunk id."""
    trunk: dict[str, object] = {
        "type": "STATIC",
        "name": "sipp",
        "channelLimit": 1000,
        "billingPackage": {"packageType": "METERED"},
        "sourceHosts": ["127.0.0.1"],
    }
    if uas_port is not None:
        trunk["destinationHosts"] = [f"127.0.0.1:{uas_port}"]
    steps = [
        ("POST", "/calls/1/configurations", {"id": "bench"}),
        ("PUT", f"/gateway/1/numbers/{DID}", {"callsConfigurationId": "bench"}),
        ("POST", "/calls/1/sip-trunks", trunk),
        (
            "POST",
            "/subscriptions/1/subscription/VOICE_VIDEO",
            {"subscriptionId": "bench", "events": ["CALL_RECEIVED"],
             "criteria": [{"callsConfigurationId": "bench"}],
             "profile": {"profileId": "bench",
                         "webhook": {"notifyUrl": f"http://127.0.0.1:{app_port}/events"}}},
        ),
    ]  # fmt: skip
    trunk_id = ""
    for method, path, body in steps:
        response = await api.request(method, path, json=body)
        response.raise_for_status()
        if path == "/calls/1/sip-trunks":
            trunk_id = response.json()["id"]
    return trunk_id


async def run_step(
    sip_port: int, rate: int, seconds: int, hold_ms: int, work: Path, scenario: str = "uac_hold"
) -> dict[str, float]:
    calls = rate * seconds
    counts = ["-trace_counts"] if scenario == "uac_bypass" else []
    process = await asyncio.create_subprocess_exec(
        "sipp", f"127.0.0.1:{sip_port}", "-sf", str(HERE / f"{scenario}.xml"), "-s", DID,
        "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()),
        "-r", str(rate), "-m", str(calls), "-l", str(rate * (hold_ms // 1000 + 3)),
        "-d", str(hold_ms), "-nostdin", "-timeout", str(seconds + 30), "-timeout_error",
        "-trace_stat", "-stf", str(work / "stats.csv"), "-fd", "1",
        "-recv_timeout", "10000", *counts,
        cwd=work, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    started = time.monotonic()
    await process.wait()
    elapsed = time.monotonic() - started
    rows = (work / "stats.csv").read_text().strip().splitlines()
    header, last = rows[0].split(";"), rows[-1].split(";")
    stats = dict(zip(header, last, strict=False))
    (work / "stats.csv").unlink()
    return {
        "rate": rate,
        "calls": calls,
        "ok": int(stats.get("SuccessfulCall(C)", 0)),
        "failed": int(stats.get("FailedCall(C)", 0)),
        "seconds": elapsed,
        "rtd_ms": _rtd_ms(stats),
        "reinvites": _reinvites(work, scenario) if counts else None,
    }


def _reinvites(work: Path, scenario: str) -> int:
    """How many calls the caller saw re-INVITEd (their media moved to the callee), from
    SIPp's message counts."""
    total = 0
    for path in work.glob(f"{scenario}_*_counts.csv"):
        rows = path.read_text().strip().splitlines()
        header, last = rows[0].split(";"), rows[-1].split(";")
        total += sum(
            int(value)
            for name, value in zip(header, last, strict=False)
            if name.endswith("_INVITE_Recv")
        )
        path.unlink()
    return total


def _rtd_ms(stats: dict[str, str]) -> float:
    text = stats.get("ResponseTime1(C)", "")
    match = re.match(r"(\d+):(\d+):(\d+):(\d+)", text)
    if not match:
        return float("nan")
    h, m, s, us = (int(x) for x in match.groups())
    return ((h * 60 + m) * 60 + s) * 1000 + us / 1000


async def bench(
    rates: list[int], seconds: int, hold_ms: int, profile_top: int, with_b2bua: bool
) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-sip-"))
    results: list[dict[str, float]] = []
    best = 0
    try:
        best = await _ramp(work, rates, seconds, hold_ms, results)
        _print_table(results, best, hold_ms)
        if best and profile_top:
            await _profile(work, best, seconds, hold_ms, profile_top)
        if with_b2bua:
            figures = await b2bua(rates, seconds, hold_ms, work)
            print("\nB2BUA: highest rate with zero failed calls")
            for name, (top, _) in figures.items():
                print(f"  {name:8s} {top} calls/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if best else 1


async def _session(work: Path, profile: Path | None, uas_port: int | None = None):
    http_port, sip_port = free_port(), free_port()
    data = work / f"data-{time.monotonic_ns()}"
    gateway = start_gateway(data, http_port, sip_port, profile)
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{http_port}",
        headers={"Authorization": f"App {KEY}"},
        limits=httpx.Limits(max_connections=50),
        timeout=30,
    )
    app = AnsweringApp(api)
    await app.start()
    trunk_id = await configure(api, app.port, uas_port)
    if uas_port is not None:
        app.dialog_trunk = trunk_id
    return gateway, api, app, sip_port


async def _close(gateway: subprocess.Popen, api: httpx.AsyncClient, app: AnsweringApp) -> None:
    await app.stop()
    await api.aclose()
    gateway.send_signal(signal.SIGTERM)
    gateway.wait(timeout=30)


async def _ramp(work: Path, rates: list[int], seconds: int, hold_ms: int, results: list) -> int:
    gateway, api, app, sip_port = await _session(work, None)
    try:
        return await _ramp_to(sip_port, work, rates, seconds, hold_ms, results)
    finally:
        await _close(gateway, api, app)


async def _ramp_to(
    port: int,
    work: Path,
    rates: list[int],
    seconds: int,
    hold_ms: int,
    results: list,
    scenario: str = "uac_hold",
) -> int:
    """Raise the rate until a step has a failed call; the last rate with none."""
    best = 0
    for rate in rates:
        result = await run_step(port, rate, seconds, hold_ms, work, scenario)
        results.append(result)
        ok, calls, failed = result["ok"], result["calls"], result["failed"]
        moved = "" if result["reinvites"] is None else f", {result['reinvites']} bypassed"
        print(f"  {rate:5d} cps: {ok:.0f}/{calls:.0f} ok, {failed:.0f} failed{moved}", flush=True)
        if result["failed"] or result["ok"] < result["calls"]:
            break
        best = rate
    return best


async def start_uas() -> tuple[asyncio.subprocess.Process, int]:
    """A SIPp UAS as the callee: 180, 200, answers re-INVITEs, echoes RTP, waits for the BYE."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        "sipp", "-sf", str(HERE / "uas_bypass.xml"), "-i", "127.0.0.1", "-p", str(port),
        "-nostdin", "-bg", "-mp", str(free_port()), "-rtp_echo",
        "-timeout", "900", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await process.wait()  # -bg: SIPp forks into the background and prints its pid
    return process, port


def stop_uas(port: int) -> None:
    subprocess.run(["pkill", "-f", f"uas_bypass.xml -i 127.0.0.1 -p {port} "], check=False)


async def b2bua(rates: list[int], seconds: int, hold_ms: int, work: Path) -> dict[str, tuple]:
    """SIPp UAC → B2BUA → SIPp UAS: the gateway (a dialog per call, through the Calls API
    loop) and, in the same run, the sippy B2BUA (signalling only)."""
    figures: dict[str, tuple] = {}
    (work / "bench.ul").write_bytes(b"\xff" * 8000)  # a second of µ-law silence, looped
    _, uas_port = await start_uas()
    try:
        gateway, api, app, sip_port = await _session(work, None, uas_port)
        results: list[dict[str, float]] = []
        try:
            print("\ngateway B2BUA (dialog to a SIP callee, media bypassed):", flush=True)
            best = await _ramp_to(sip_port, work, rates, seconds, hold_ms, results, "uac_bypass")
        finally:
            await _close(gateway, api, app)
        figures["gateway"] = (best, results)
        sippy = _start_sippy(uas_port)
        if sippy is None:
            print("\nsippy is not installed (make bench-sip installs it): no peer figure")
            return figures
        port, process = sippy
        results = []
        try:
            print("\nsippy B2BUA (b2bua_simple, signalling only):", flush=True)
            best = await _ramp_to(port, work, rates, seconds, hold_ms, results)
        finally:
            process.terminate()
            process.wait(timeout=10)
        figures["sippy"] = (best, results)
    finally:
        stop_uas(uas_port)
    return figures


def _start_sippy(next_hop: int) -> tuple[int, subprocess.Popen] | None:
    try:
        import sippy  # noqa: F401 - only to know it is there
    except ImportError:
        return None
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sippy.b2bua_simple", "-f", "-l", "127.0.0.1", "-p", str(port),
         "-n", f"127.0.0.1:{next_hop}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # b2bua_simple prints nothing when it listens; give it a moment
    return port, process


def _print_table(results: list[dict[str, float]], best: int, hold_ms: int) -> None:
    print()
    print("Calls API loop: SIPp INVITE → CALL_RECEIVED → webhook app → answer API → 200 OK;")
    print(f"each call held {hold_ms} ms, then SIPp hangs up")
    print(
        f"{'calls/s':>8} {'calls':>7} {'ok':>7} {'failed':>7} {'answer ms (avg)':>16} {'wall s':>7}"
    )
    for r in results:
        counts = f"{r['rate']:>8.0f} {r['calls']:>7.0f} {r['ok']:>7.0f} {r['failed']:>7.0f}"
        print(f"{counts} {r['rtd_ms']:>16.1f} {r['seconds']:>7.1f}")
    print(
        f"\nhighest rate with zero failed calls: {best} calls/s" if best else "\nevery rate failed"
    )
    prompt = [r["rate"] for r in results if not r["failed"] and r["rtd_ms"] <= PROMPT_MS]
    if prompt:
        print(f"highest rate answered within {PROMPT_MS} ms on average: {max(prompt):.0f} calls/s")


async def _profile(work: Path, rate: int, seconds: int, hold_ms: int, top: int) -> None:
    profile = work / "gateway.prof"
    gateway, api, app, sip_port = await _session(work, profile)
    try:
        await run_step(sip_port, rate, seconds, hold_ms, work)
    finally:
        await _close(gateway, api, app)
    print(f"\nwhere the gateway's time goes at {rate} calls/s (cProfile, by own time):")
    stats = pstats.Stats(str(profile))
    stats.sort_stats("tottime").print_stats(top)
    if os.environ.get("BENCH_KEEP_PROFILE"):
        shutil.copy(profile, os.environ["BENCH_KEEP_PROFILE"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rates", default="10,20,40,60,80,100,130,160,200", help="calls per second, ramped"
    )
    parser.add_argument("--seconds", type=int, default=10, help="how long each rate runs")
    parser.add_argument("--no-b2bua", action="store_true", help="skip the B2BUA and sippy runs")
    parser.add_argument(
        "--hold-ms", type=int, default=1000, help="how long each call lasts once answered"
    )
    parser.add_argument("--profile-top", type=int, default=25, help="profile rows (0: no profile)")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester; `make system-deps`)")
    rates = [int(r) for r in args.rates.split(",")]
    with_b2bua = not args.no_b2bua
    sys.exit(asyncio.run(bench(rates, args.seconds, args.hold_ms, args.profile_top, with_b2bua)))


if __name__ == "__main__":
    main()
