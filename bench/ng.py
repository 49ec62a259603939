"""rtpengine's NG control protocol: bencoded dictionaries over UDP, each prefixed by a cookie.

Just enough for a benchmark: a bencode encoder and decoder, and a client that sends commands
(``ping``, ``offer``, ``answer``, ``delete``) and matches replies to them by cookie, with many
commands in flight at once.
"""

from __future__ import annotations

import itertools
import re
import select
import socket
import time
from typing import Any

Bencodable = bytes | str | int | list[Any] | dict[str, Any]


def bencode(value: Bencodable) -> bytes:
    """Strings (as UTF-8) and bytes, ints, lists and dicts (keys sorted, as bencode wants)."""
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, str):
        return bencode(value.encode())
    if isinstance(value, bool | int):
        return b"i%de" % int(value)
    if isinstance(value, list | tuple):
        return b"l" + b"".join(bencode(item) for item in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """The inverse of :func:`bencode`; byte strings come back as ``str`` when they are UTF-8."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError(f"trailing bytes after offset {end}")
    return value


def _decode(data: bytes, at: int) -> tuple[Any, int]:
    head = data[at : at + 1]
    if head == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1 : end]), end + 1
    if head == b"l":
        items, at = [], at + 1
        while data[at : at + 1] != b"e":
            item, at = _decode(data, at)
            items.append(item)
        return items, at + 1
    if head == b"d":
        result, at = {}, at + 1
        while data[at : at + 1] != b"e":
            key, at = _decode(data, at)
            result[key], at = _decode(data, at)
        return result, at + 1
    if head.isdigit():
        colon = data.index(b":", at)
        start = colon + 1
        end = start + int(data[at:colon])
        if end > len(data):
            raise ValueError("a string runs past the end")
        raw = data[start:end]
        try:
            return raw.decode(), end
        except UnicodeDecodeError:
            return raw, end
    raise ValueError(f"not bencode at offset {at}: {head!r}")


class NgError(RuntimeError):
    """rtpengine answered ``result: error``, or did not answer in time."""


class NgClient:
    """A UDP NG client. ``many`` pipelines commands, ``window`` at a time, retrying once."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.setblocking(False)
        self._cookies = itertools.count(1)

    def close(self) -> None:
        self._sock.close()

    def command(self, command: dict[str, Any]) -> dict[str, Any]:
        return self.many([command])[0]

    def many(self, commands: list[dict[str, Any]], window: int = 64) -> list[dict[str, Any]]:
        """Send every command, at most ``window`` unanswered; replies in the commands' order."""
        replies: list[dict[str, Any] | None] = [None] * len(commands)
        pending: dict[bytes, tuple[int, float, bool]] = {}  # cookie -> index, sent at, retried
        queue = iter(range(len(commands)))
        deadline = time.monotonic() + self.timeout + len(commands) * 0.01
        done = 0
        while done < len(commands):
            while len(pending) < window:
                index = next(queue, None)
                if index is None:
                    break
                pending[self._send(commands[index])] = (index, time.monotonic(), False)
            now = time.monotonic()
            if now > deadline:
                raise NgError(f"rtpengine answered {done} of {len(commands)} commands in time")
            for cookie, (index, sent, retried) in list(pending.items()):
                if now - sent > 1.0:  # lost on the way (UDP): once more, with a new cookie
                    if retried:
                        raise NgError(f"no answer to {commands[index].get('command')}")
                    del pending[cookie]
                    pending[self._send(commands[index])] = (index, now, True)
            select.select([self._sock], [], [], 0.05)
            while True:
                try:
                    data = self._sock.recv(65535)
                except BlockingIOError:
                    break
                cookie, _, body = data.partition(b" ")
                entry = pending.pop(cookie, None)
                if entry is None:
                    continue  # the answer to a command already retried
                reply = bdecode(body)
                if reply.get("result") == "error":
                    raise NgError(f"{commands[entry[0]].get('command')}: {reply}")
                replies[entry[0]] = reply
                done += 1
        return [r for r in replies if r is not None]

    def _send(self, command: dict[str, Any]) -> bytes:
        cookie = b"%d_%d" % (time.monotonic_ns() % 1_000_000, next(self._cookies))
        self._sock.sendto(cookie + b" " + bencode(command), self.address)
        return cookie


def audio_port(sdp: str) -> int:
    """The port of the first ``m=audio`` line of an SDP."""
    match = re.search(r"^m=audio (\d+) ", sdp, re.MULTILINE)
    if match is None:
        raise NgError(f"no audio m-line in {sdp!r}")
    return int(match.group(1))


def pcmu_sdp(address: tuple[str, int], session_id: int) -> str:
    """A minimal PCMU offer or answer for one RTP endpoint."""
    host, port = address
    return (
        "v=0\r\n"
        f"o=- {session_id} 1 IN IP4 {host}\r\n"
        "s=bench\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
