"""A real SIP user agent for tests: baresip, headless, driven over its ``ctrl_tcp`` module.

    async with Baresip.start(tmp_path / "phone", account) as phone:
        await phone.wait_registered()
        await phone.command("dial", "sip:441134960100@127.0.0.1:5060")
        await phone.wait_event("CALL_ESTABLISHED")

Each instance gets its own config directory (``config`` + ``accounts``), a SIP port and a control
port on loopback. No audio device is touched: source and player are one ``aubridge`` device, a
loop inside baresip that never ends by itself (``aufile`` would: at its end of file baresip's
menu hangs the call up) and needs no ALSA. ``ctrl_tcp`` speaks JSON in netstrings
(``LEN:JSON,``): commands carry a token echoed in their response; events arrive in between and
are queued for :meth:`Baresip.wait_event`. ``BARESIP_TRACE=1`` adds ``-s`` (a SIP trace) to the
output that a failure shows.

Everything runs in the caller's event loop (the in-process gateway is in it too): the process is
an asyncio subprocess, its output is drained into ``output`` so that a failure can show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BARESIP = shutil.which("baresip")
MODULES = Path("/usr/lib/baresip/modules")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_sip_port() -> int:
    """A port free for both UDP and TCP (baresip listens on both)."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both UDP and TCP")


@dataclass
class Account:
    """One SIP account: ``user`` registers (or not) to ``registrar`` ("host:port")."""

    user: str
    password: str
    registrar: str
    transport: str = "udp"
    answermode: str = "auto"  # manual, early or auto
    regint: int = 60  # 0: do not register

    def line(self) -> str:
        params = [
            f"auth_pass={self.password}",
            f"answermode={self.answermode}",
            f"regint={self.regint}",
            "audio_codecs=pcmu,pcma",
        ]
        return f"<sip:{self.user}@{self.registrar};transport={self.transport}>;" + ";".join(params)


def write_config(
    directory: Path,
    account: Account,
    sip_port: int,
    ctrl_port: int,
    record: bool = False,
    tone: int | None = None,
) -> None:
    """``record``: the sndfile module writes what each call sent and received as WAV files
    (``*-dec.wav`` is what baresip heard) into the ``recordings`` folder beside the config.
    ``tone``: what baresip sends is a sine of that many Hz (the ausine module), not silence."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "poll_method": "epoll",
        # SDP on loopback, not the host's address ("lo" fails: "Cannot assign requested address").
        "net_interface": "127.0.0.1",
        "sip_listen": f"127.0.0.1:{sip_port}",
        "call_local_timeout": "30",
        "call_max_calls": "4",
        "audio_source": "aubridge,nowhere",
        "audio_player": "aubridge,nowhere",
        "audio_alert": "aubridge,nowhere",
        "audio_level": "no",
        "rtp_stats": "no",
        "rtcp_mux": "no",
        "module_path": str(MODULES),
        "ctrl_tcp_listen": f"127.0.0.1:{ctrl_port}",
    }
    modules = ["g711", "aubridge"]
    if tone is not None:  # ausine makes 48 kHz stereo only; baresip resamples for the codec
        config |= {"audio_source": f"ausine,{tone}", "ausrc_srate": "48000"}
        config["ausrc_channels"] = "2"
        modules.append("ausine")
    if record:
        (directory / "recordings").mkdir(exist_ok=True)
        config["snd_path"] = str(directory / "recordings")
        modules.append("sndfile")
    lines = [f"{name}\t{value}" for name, value in config.items()]
    lines += [f"module\t{name}.so" for name in modules]
    lines += [f"module_tmp\t{name}.so" for name in ("uuid", "account")]
    # menu registers the commands (dial, hangup, accept, reginfo) that ctrl_tcp runs.
    lines += [f"module_app\t{name}.so" for name in ("menu", "ctrl_tcp")]
    (directory / "config").write_text("\n".join(lines) + "\n")
    (directory / "accounts").write_text(account.line() + "\n")
    (directory / "contacts").write_text("")


class BaresipError(AssertionError):
    pass


@dataclass
class Baresip:
    """A running baresip and a ``ctrl_tcp`` connection to it."""

    directory: Path
    account: Account
    sip_port: int
    ctrl_port: int
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _responses: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _tokens: itertools.count = field(default_factory=lambda: itertools.count(1))
    _seen: int = 0  # events before this index were consumed by wait_event

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        directory: Path,
        account: Account,
        timeout: float = 10,
        run_for: int = 120,
        record: bool = False,
        tone: int | None = None,
    ) -> AsyncIterator[Baresip]:
        if BARESIP is None:
            raise BaresipError("baresip is not on PATH")
        sip_port, ctrl_port = free_sip_port(), free_port()
        write_config(directory, account, sip_port, ctrl_port, record, tone)
        process = await asyncio.create_subprocess_exec(
            BARESIP,
            "-f",
            str(directory),
            "-t",
            str(run_for),  # a safety net: it quits by itself if a test forgets it
            *(["-s"] if os.environ.get("BARESIP_TRACE") else []),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        phone = cls(directory, account, sip_port, ctrl_port, process)
        phone._tasks.append(asyncio.create_task(phone._drain()))
        try:
            await phone._connect(timeout)
            yield phone
        finally:
            await phone.stop()

    # -- control --------------------------------------------------------------------------

    async def command(
        self, command: str, params: str | None = None, timeout: float = 5
    ) -> dict[str, Any]:
        """Run a command; its response ``{"response": true, "ok": ..., "data": ...}``."""
        assert self._writer is not None
        token = str(next(self._tokens))
        message: dict[str, Any] = {"command": command, "token": token}
        if params is not None:
            message["params"] = params
        payload = json.dumps(message).encode()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._responses[token] = future
        self._writer.write(b"%d:%s," % (len(payload), payload))
        await self._writer.drain()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise BaresipError(f"no response to {message}\n{self.log()}") from None
        finally:
            self._responses.pop(token, None)

    async def wait_event(self, type: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """The first event of ``type`` (with ``match``ing fields) not yet returned by this."""

        def found() -> dict[str, Any] | None:
            for index in range(self._seen, len(self.events)):
                event = self.events[index]
                if event.get("type") == type and all(event.get(k) == v for k, v in match.items()):
                    self._seen = index + 1
                    return event
            return None

        try:
            async with asyncio.timeout(timeout), self._arrived:
                while (event := found()) is None:
                    if self._reader is None:
                        raise BaresipError(f"ctrl_tcp closed waiting for {type}\n{self.log()}")
                    await self._arrived.wait()
                return event
        except TimeoutError:
            raise BaresipError(
                f"no {type} event within {timeout}s; events: "
                f"{[e.get('type') for e in self.events]}\n{self.log()}"
            ) from None

    def event_types(self) -> list[str]:
        return [str(event.get("type")) for event in self.events]

    async def registered(self) -> bool:
        """Whether ``reginfo`` reports the account as registered (``OK``), not just trying."""
        info = await self.command("reginfo")
        # "> sip:USER@HOST:PORT \x1b[32mOK \x1b[;m  Expires 59s": colours around the state.
        data = ANSI.sub("", str(info.get("data", "")))
        return info.get("ok") is True and any(
            self.account.user in line and re.search(r"\sOK\s", line) for line in data.splitlines()
        )

    async def wait_registered(self, timeout: float = 10) -> str:
        """Poll ``reginfo`` (woken by each event) until the account is registered."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    before = len(self.events)
                    if await self.registered():
                        return ANSI.sub("", str((await self.command("reginfo")).get("data")))
                    async with self._arrived:
                        # A new event (REGISTER_OK among them) or a second, whichever first.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(
                                self._arrived.wait_for(lambda n=before: len(self.events) > n), 1.0
                            )
        except TimeoutError:
            info = await self.command("reginfo")
            raise BaresipError(f"not registered: {info}\n{self.log()}") from None

    def log(self, chars: int = 12000) -> str:
        return "baresip output:\n" + "".join(self.output)[-chars:]

    async def stop(self, timeout: float = 5) -> int | None:
        """Ask it to quit (it unregisters), then make sure it is gone."""
        if self.process.returncode is None and self._writer is not None:
            with contextlib.suppress(Exception):
                await self.command("quit", timeout=1)
        if self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.process.returncode

    # -- internals ------------------------------------------------------------------------

    async def _connect(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self.process.returncode is not None:
                        raise BaresipError(f"baresip exited at start\n{self.log()}")
                    try:
                        self._reader, self._writer = await asyncio.open_connection(
                            "127.0.0.1", self.ctrl_port
                        )
                        break
                    except OSError:
                        # Nothing to wait on but the listener appearing: retry shortly.
                        await asyncio.sleep(0.05)
        except TimeoutError:
            raise BaresipError(f"ctrl_tcp not listening\n{self.log()}") from None
        self._tasks.append(asyncio.create_task(self._read()))

    async def _drain(self) -> None:
        # In chunks, not lines: the call status line is redrawn with CRs and never ends.
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(65536):
            self.output.append(chunk.decode(errors="replace"))

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                length = await self._reader.readuntil(b":")
                payload = await self._reader.readexactly(int(length[:-1]))
                if await self._reader.readexactly(1) != b",":
                    raise BaresipError("ctrl_tcp: broken netstring")
                message = json.loads(payload)
                if message.get("response"):
                    future = self._responses.get(str(message.get("token")))
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("event"):
                    async with self._arrived:
                        self.events.append(message)
                        self._arrived.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._reader = None
            async with self._arrived:
                self._arrived.notify_all()
