"""Audio behind a URL (``play`` content of type URL): fetched once, decoded, cached.

The :class:`~gateway.core.ports.AudioFetcher` of the core. Only http and https; one total time
limit per fetch (connect, headers and body together) and a size limit checked while the body
streams in, so a slow or endless source costs at most the limit; decoded (WAV or MP3, told by
the content) in a thread. Successes are cached by URL in the shared :class:`AudioCache`, and
concurrent plays of one URL share one download. Failures are not cached: the next play of the
URL tries again.

Any host is fetched, loopback and private addresses included: the gateway is self-hosted and
its users' announcements often live next to it.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import numpy as np

from gateway.core.ports import ContentUnavailable
from gateway.media.audio_cache import AudioCache
from gateway.media.audiofile import UnsupportedAudio, decode_audio

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


class UrlAudio:
    def __init__(
        self,
        cache: AudioCache,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._cache = cache
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=True, transport=transport
        )

    async def fetch(self, url: str) -> np.ndarray:
        """int16 mono 8 kHz samples (read-only, shared); raises :class:`ContentUnavailable`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ContentUnavailable(f"{url!r} is not an http or https URL.")
        return await self._cache.get(("url", url), lambda: self._load(url))

    async def close(self) -> None:
        await self._client.aclose()

    async def _load(self, url: str) -> np.ndarray:
        try:
            async with asyncio.timeout(self.timeout):
                data = await self._download(url)
        except TimeoutError:
            raise ContentUnavailable(
                f"{url} was not fetched within {self.timeout:g} seconds."
            ) from None
        except httpx.HTTPError as error:
            raise ContentUnavailable(f"{url} could not be fetched: {error!r}.") from None
        try:
            return (await asyncio.to_thread(decode_audio, data)).samples
        except UnsupportedAudio as error:
            raise ContentUnavailable(f"{url} cannot be played: {error}") from None

    async def _download(self, url: str) -> bytes:
        async with self._client.stream("GET", url) as response:
            if response.status_code != 200:
                raise ContentUnavailable(f"{url} answered HTTP {response.status_code}.")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise self._too_big(url)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise self._too_big(url)
            return bytes(body)

    def _too_big(self, url: str) -> ContentUnavailable:
        return ContentUnavailable(f"{url} is larger than the {self.max_bytes} bytes allowed.")
