"""Audio played from a URL, fetched from a real HTTP server on loopback: WAV and MP3 heard as
their tones, every way a fetch fails (status, not audio, too big by header or by stream, too
slow), failures not cached, and concurrent plays of one URL served by one request."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest

from gateway.core.ports import ContentUnavailable
from gateway.media.audio_cache import AudioCache
from gateway.testing.audio import dominant_frequency, tone
from gateway.url_audio import UrlAudio
from tests.media.test_audiofile import mp3_bytes, wav_bytes

MAX_BYTES = 100_000
TIMEOUT = 1.0

Handler = Callable[[asyncio.StreamWriter], Awaitable[None]]


def head(status: str, length: int | None = None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else ""
    return f"HTTP/1.1 {status}\r\n{size}{extra}Connection: close\r\n\r\n".encode()


def whole(body: bytes, status: str = "200 OK") -> Handler:
    async def send(writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, len(body)) + body)

    return send


class AudioServer:
    """An HTTP/1.0-style server on 127.0.0.1 (one request per connection) serving ``routes``,
    counting requests by path; ``requested`` wakes on each one."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: Counter[str] = Counter()
        self.requested = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> AudioServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def wait_for_requests(self, path: str, count: int, timeout: float = 5) -> None:
        async with self.requested:
            await asyncio.wait_for(
                self.requested.wait_for(lambda: self.requests[path] >= count), timeout
            )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode()
            async with self.requested:
                self.requests[path] += 1
                self.requested.notify_all()
            await self.routes.get(path, whole(b"no such path", "404 Not Found"))(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (too big, too slow): what those tests want
        finally:
            writer.close()
            self._handlers.discard(task)


@pytest.fixture
async def server() -> AsyncIterator[AudioServer]:
    async with AudioServer() as running:
        yield running


@pytest.fixture
async def fetcher() -> AsyncIterator[UrlAudio]:
    cache = AudioCache(10_000_000)
    audio = UrlAudio(cache, timeout=TIMEOUT, max_bytes=MAX_BYTES)
    yield audio
    await cache.close()
    await audio.close()


def heard(samples: np.ndarray) -> float:
    return dominant_frequency(samples[400:-400], 8000)


async def test_wav_and_mp3(server: AudioServer, fetcher: UrlAudio) -> None:
    server.routes["/hello.wav"] = whole(wav_bytes(tone(440, 1.0, rate=16000), 16000))
    # The name says WAV, the content is MP3: the content decides.
    server.routes["/menu.wav"] = whole(mp3_bytes(tone(1000, 1.5, rate=44100), 44100))
    wav = await fetcher.fetch(f"{server.base}/hello.wav")
    assert wav.dtype == np.int16 and abs(len(wav) - 8000) <= 160
    assert heard(wav) == pytest.approx(440, abs=2)
    mp3 = await fetcher.fetch(f"{server.base}/menu.wav")
    assert abs(len(mp3) - 12000) <= 160
    assert heard(mp3) == pytest.approx(1000, abs=2)


async def test_redirect_is_followed(server: AudioServer, fetcher: UrlAudio) -> None:
    server.routes["/hello.wav"] = whole(wav_bytes(tone(440, 0.5), 8000))

    async def moved(writer: asyncio.StreamWriter) -> None:
        writer.write(head("302 Found", 0, f"Location: {server.base}/hello.wav\r\n"))

    server.routes["/moved"] = moved
    assert heard(await fetcher.fetch(f"{server.base}/moved")) == pytest.approx(440, abs=2)


async def test_fetched_once_then_cached(server: AudioServer, fetcher: UrlAudio) -> None:
    server.routes["/hello.wav"] = whole(wav_bytes(tone(440, 0.5), 8000))
    url = f"{server.base}/hello.wav"
    first = await fetcher.fetch(url)
    assert await fetcher.fetch(url) is first
    assert server.requests["/hello.wav"] == 1


async def test_concurrent_fetches_share_one_request(server: AudioServer, fetcher: UrlAudio) -> None:
    gate = asyncio.Event()
    body = wav_bytes(tone(440, 0.5), 8000)

    async def gated(writer: asyncio.StreamWriter) -> None:
        await gate.wait()
        writer.write(head("200 OK", len(body)) + body)

    server.routes["/gated.wav"] = gated
    url = f"{server.base}/gated.wav"
    plays = [asyncio.create_task(fetcher.fetch(url)) for _ in range(4)]
    await server.wait_for_requests("/gated.wav", 1)  # every play is waiting by now
    gate.set()
    results = await asyncio.gather(*plays)
    assert all(r is results[0] for r in results)
    assert server.requests["/gated.wav"] == 1
    assert heard(results[0]) == pytest.approx(440, abs=2)


async def test_http_errors(server: AudioServer, fetcher: UrlAudio) -> None:
    server.routes["/broken.wav"] = whole(b"oops", "500 Internal Server Error")
    with pytest.raises(ContentUnavailable, match="answered HTTP 404") as missing:
        await fetcher.fetch(f"{server.base}/missing.wav")
    assert missing.value.error_code == "FILE_CAN_NOT_BE_PLAYED"
    with pytest.raises(ContentUnavailable, match="answered HTTP 500"):
        await fetcher.fetch(f"{server.base}/broken.wav")


async def test_not_audio(server: AudioServer, fetcher: UrlAudio) -> None:
    server.routes["/page.html"] = whole(b"<html><body>Hello</body></html>")
    with pytest.raises(ContentUnavailable, match=r"neither WAV .* nor MP3"):
        await fetcher.fetch(f"{server.base}/page.html")


async def test_too_big_by_its_length(server: AudioServer, fetcher: UrlAudio) -> None:
    server.routes["/big.wav"] = whole(wav_bytes(tone(440, 10.0), 8000))  # 160 kB
    with pytest.raises(ContentUnavailable, match=f"larger than the {MAX_BYTES} bytes"):
        await fetcher.fetch(f"{server.base}/big.wav")


async def test_too_big_while_streaming(server: AudioServer, fetcher: UrlAudio) -> None:
    """No Content-Length, and a body that would never end: the fetch stops at the limit and
    hangs up, long before the server's own bound."""
    hung_up = asyncio.Event()

    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK") + wav_bytes(tone(440, 0.1), 8000))
        try:
            for _ in range(100_000):  # 800 MB: bounded, in case the client never stops
                writer.write(b"\0" * 8192)
                await writer.drain()
        except ConnectionError:
            hung_up.set()

    server.routes["/endless.wav"] = endless
    with pytest.raises(ContentUnavailable, match=f"larger than the {MAX_BYTES} bytes"):
        await fetcher.fetch(f"{server.base}/endless.wav")
    await asyncio.wait_for(hung_up.wait(), 5)


async def test_too_slow(server: AudioServer, fetcher: UrlAudio) -> None:
    """Bytes keep coming, but too slowly: the total limit ends it, not a per-read timeout."""
    body = wav_bytes(tone(440, 1.0), 8000)

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", len(body)))
        for start in range(0, len(body), 500):
            writer.write(body[start : start + 500])
            await writer.drain()
            await asyncio.sleep(0.05)  # 10 kB/s: 1.6 s for the file, the limit is 1 s

    server.routes["/slow.wav"] = trickle
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ContentUnavailable, match=f"not fetched within {TIMEOUT:g} seconds"):
        await fetcher.fetch(f"{server.base}/slow.wav")
    assert TIMEOUT <= loop.time() - began < TIMEOUT + 0.5


async def test_failures_are_not_cached(server: AudioServer, fetcher: UrlAudio) -> None:
    url = f"{server.base}/later.wav"
    with pytest.raises(ContentUnavailable, match="HTTP 404"):
        await fetcher.fetch(url)
    server.routes["/later.wav"] = whole(wav_bytes(tone(440, 0.5), 8000))  # now it is there
    assert heard(await fetcher.fetch(url)) == pytest.approx(440, abs=2)
    assert server.requests["/later.wav"] == 2


async def test_refused_without_a_request(server: AudioServer, fetcher: UrlAudio) -> None:
    port = server.base.rsplit(":", 1)[1]
    for url in (f"ftp://127.0.0.1:{port}/a.wav", "file:///etc/passwd", "http:///a.wav", "x"):
        with pytest.raises(ContentUnavailable, match="not an http or https URL"):
            await fetcher.fetch(url)
    assert sum(server.requests.values()) == 0


async def test_unreachable(fetcher: UrlAudio) -> None:
    async with AudioServer() as gone:
        url = f"{gone.base}/a.wav"
    with pytest.raises(ContentUnavailable, match="could not be fetched"):
        await fetcher.fetch(url)
