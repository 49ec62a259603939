"""Uploaded audio files: ``/calls/1/files`` through the real app (every body against the
OpenAPI), and the :class:`FileLibrary` underneath: bytes on disk written whole or not at all,
decoded samples cached, expiry on a controlled clock and by the sweep timer, the shared cache's
budget and single loads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.core.calls import InvalidRequest
from gateway.core.files import AudioFile, AudioFileNotFound, FileLibrary
from gateway.core.ports import ContentUnavailable
from gateway.media.audio_cache import AudioCache
from gateway.settings import Settings
from gateway.store import Database
from gateway.store.files import SqlFileStore
from gateway.testing.audio import dominant_frequency, tone
from tests.conftest import API_KEY, fast_settings
from tests.contract import OpenApiContract, voice
from tests.media.test_audiofile import mp3_bytes, wav_bytes

FILES = "/calls/1/files"
MAX_BYTES = 200_000


def tone_wav(frequency: float = 440, seconds: float = 2.0, rate: int = 8000) -> bytes:
    return wav_bytes(tone(frequency, seconds, rate=rate), rate)


def leftovers(directory: Path) -> list[str]:
    """Whatever is in the files directory besides the files themselves (temporaries)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


async def wait_until(condition: Callable[[], Awaitable[bool] | bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if await result if isinstance(result, Awaitable) else result:
                return
            await asyncio.sleep(0.02)


# -- through the API --------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "data", file_max_bytes=MAX_BYTES)


@pytest.fixture
def spec(reference: Path) -> OpenApiContract:
    return voice(reference)


async def call(
    api: httpx.AsyncClient, spec: OpenApiContract, method: str, path: str, status: int, **kw: Any
) -> Any:
    """A request whose answer has ``status`` and a body the spec allows (strictly)."""
    response = await api.request(method, path, **kw)
    assert response.status_code == status, response.text
    spec.validate(method, path, status, response.json(), strict=True)
    return response.json()


async def upload(
    api: httpx.AsyncClient, spec: OpenApiContract, name: str, data: bytes, status: int = 200
) -> Any:
    return await call(api, spec, "POST", FILES, status, files={"file": (name, data)})


async def test_upload_get_list_delete(
    api: httpx.AsyncClient, gateway: Gateway, spec: OpenApiContract
) -> None:
    wav = tone_wav(440, 2.0)
    mp3 = mp3_bytes(tone(1000, 3.0, rate=22050), 22050)
    first = await upload(api, spec, "welcome.wav", wav)
    assert {k: first[k] for k in ("name", "fileFormat", "size", "duration")} == {
        "name": "welcome.wav",
        "fileFormat": "WAV",
        "size": len(wav),
        "duration": 2,
    }
    # Named .wav, but MP3 inside: the content decides.
    second = await upload(api, spec, "menu.wav", mp3)
    assert (second["fileFormat"], second["duration"], second["size"]) == ("MP3", 3, len(mp3))
    created = datetime.strptime(first["creationTime"], "%Y-%m-%dT%H:%M:%S.%f%z")
    expires = datetime.strptime(first["expirationTime"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert expires - created == timedelta(days=90)

    on_disk = gateway.settings.data_dir / "files"
    assert sorted(p.name for p in on_disk.iterdir()) == sorted(
        [f"{first['id']}.wav", f"{second['id']}.mp3"]
    )
    assert (on_disk / f"{first['id']}.wav").read_bytes() == wav

    assert await call(api, spec, "GET", f"{FILES}/{first['id']}", 200) == first
    listed = await call(api, spec, "GET", FILES, 200)
    assert [f["id"] for f in listed["results"]] == [second["id"], first["id"]]  # newest first
    assert listed["paging"] == {"page": 0, "size": 20, "totalPages": 1, "totalResults": 2}
    paged = await call(api, spec, "GET", FILES, 200, params={"page": 1, "size": 1})
    assert [f["id"] for f in paged["results"]] == [first["id"]]
    assert paged["paging"]["totalPages"] == 2

    # What a play will get: the tones, at 8 kHz.
    for body, frequency in ((first, 440), (second, 1000)):
        samples = await gateway.files.samples(body["id"])
        assert dominant_frequency(samples[400:-400], 8000) == pytest.approx(frequency, abs=2)

    deleted = await call(api, spec, "DELETE", f"{FILES}/{first['id']}", 200)
    assert deleted["expirationTime"] > first["expirationTime"]  # played: kept longer
    assert {**deleted, "expirationTime": None} == {**first, "expirationTime": None}
    assert not (on_disk / f"{first['id']}.wav").exists()
    gone = await call(api, spec, "GET", f"{FILES}/{first['id']}", 404)
    assert gone["requestError"]["serviceException"]["messageId"] == "NOT_FOUND"
    await call(api, spec, "DELETE", f"{FILES}/{first['id']}", 404)
    listed = await call(api, spec, "GET", FILES, 200)
    assert [f["id"] for f in listed["results"]] == [second["id"]]
    with pytest.raises(AudioFileNotFound):
        await gateway.files.samples(first["id"])


async def test_unknown_file_is_404(api: httpx.AsyncClient, spec: OpenApiContract) -> None:
    for method in ("GET", "DELETE"):
        body = await call(api, spec, method, f"{FILES}/no-such-file", 404)
        assert "no-such-file" in body["requestError"]["serviceException"]["text"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"just some text, not audio", "neither WAV"),
        (b"", "empty"),
        (tone_wav()[:100], "truncated"),
        (b"\0" * (MAX_BYTES + 1), f"is larger than the {MAX_BYTES} bytes allowed"),
    ],
    ids=["text", "empty", "truncated", "too-big"],
)
async def test_refused_uploads_name_the_file_field(
    api: httpx.AsyncClient, gateway: Gateway, spec: OpenApiContract, data: bytes, reason: str
) -> None:
    """400 with validationErrors.file: the spec's upload answers no 413, and the Calls API
    names the offending field that way."""
    body = await upload(api, spec, "bad.wav", data, status=400)
    exception = body["requestError"]["serviceException"]
    assert exception["messageId"] == "BAD_REQUEST"
    assert list(exception["validationErrors"]) == ["file"]
    assert reason in exception["validationErrors"]["file"][0]
    assert (await call(api, spec, "GET", FILES, 200))["results"] == []
    directory = gateway.settings.data_dir / "files"
    assert not directory.exists() or list(directory.iterdir()) == []


async def test_upload_without_a_file(api: httpx.AsyncClient, spec: OpenApiContract) -> None:
    for request in ({"data": {"other": "x"}, "files": {"x": ("a", b"b")}}, {"json": {}}):
        response = await api.post(FILES, **request)
        assert response.status_code == 400, response.text
        spec.validate("POST", FILES, 400, response.json(), strict=True)
        assert "file" in response.json()["requestError"]["serviceException"]["validationErrors"]


async def test_files_survive_a_restart(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data")
    first = Gateway.build(settings)
    await first.start()
    try:
        file = await first.files.upload("hello.wav", tone_wav(440, 1.0))
    finally:
        await first.stop()
    second = Gateway.build(settings)
    await second.start()
    try:
        assert second.files.get(file.id) == file
        samples = await second.files.samples(file.id)
        assert dominant_frequency(samples, 8000) == pytest.approx(440, abs=2)
    finally:
        await second.stop()


async def test_expired_files_disappear_through_the_api(tmp_path: Path) -> None:
    """A retention of half a second: 404 and unlisted once expired, then swept off the disk."""
    retention = 0.5
    settings = fast_settings(tmp_path / "data", file_retention_days=retention / 86400)
    gateway = Gateway.build(settings)
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=gateway.api)
        headers = {"Authorization": f"App {API_KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", headers=headers
        ) as api:
            response = await api.post(FILES, files={"file": ("short.wav", tone_wav())})
            assert response.status_code == 200, response.text
            file_id = response.json()["id"]
            path = settings.data_dir / "files" / f"{file_id}.wav"
            assert path.exists()

            async def gone() -> bool:
                return (await api.get(f"{FILES}/{file_id}")).status_code == 404

            await wait_until(gone, timeout=retention + 5)
            assert (await api.get(FILES)).json()["results"] == []
            await wait_until(lambda: not path.exists(), timeout=5)
            assert gateway.files.sweep() == 0  # the timer removed it, row and all
    finally:
        await gateway.stop()


# -- the library --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'files.sqlite3'}")
    database.create_all()
    yield database
    database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def library(db: Database, tmp_path: Path, clock: Clock) -> AsyncIterator[FileLibrary]:
    files = FileLibrary(
        SqlFileStore(db),
        tmp_path / "files",
        AudioCache(10_000_000),
        retention=timedelta(days=90),
        clock=clock,
    )
    yield files
    files.close()


async def test_expiry_follows_the_last_use(library: FileLibrary, clock: Clock) -> None:
    """The Calls API removes files "not used for 90 days": each play moves the expiry on."""
    kept = await library.upload("kept.wav", tone_wav(440))
    dropped = await library.upload("dropped.wav", tone_wav(1000))
    assert kept.expiration_time == clock.now + timedelta(days=90)

    clock.now += timedelta(days=60)
    await library.samples(kept.id)  # played: 90 days from now
    assert library.get(kept.id).expiration_time == clock.now + timedelta(days=90)

    clock.now += timedelta(days=30)  # dropped's 90 days are up, to the microsecond
    with pytest.raises(AudioFileNotFound):
        library.get(dropped.id)
    with pytest.raises(AudioFileNotFound):
        await library.samples(dropped.id)
    with pytest.raises(AudioFileNotFound):
        library.delete(dropped.id)
    assert [f.id for f in library.page(0, 20)[0]] == [kept.id]
    assert library.page(0, 20)[1] == 1
    assert library.path(dropped).exists()  # invisible already; the sweep removes it

    assert library.sweep() == 1
    assert not library.path(dropped).exists()
    assert library.path(kept).exists()
    assert library.sweep() == 0


async def test_the_sweep_timer_removes_expired_files(db: Database, tmp_path: Path) -> None:
    library = FileLibrary(
        SqlFileStore(db), tmp_path / "files", AudioCache(10**7), retention=timedelta(seconds=0.3)
    )
    library.start()
    try:
        first = await library.upload("a.wav", tone_wav(seconds=0.5))
        await wait_until(lambda: not library.path(first).exists(), timeout=5)
        assert library.sweep() == 0
    finally:
        library.close()


async def test_samples_are_decoded_once_and_cached(library: FileLibrary) -> None:
    file = await library.upload("tone.wav", tone_wav(440, 1.0, rate=44100))
    first = await library.samples(file.id)
    library.path(file).unlink()  # the cache answers from now on
    again = await library.samples(file.id)
    assert again is first
    assert not again.flags.writeable  # shared by every play: nobody may change it
    assert len(again) == 8000


async def test_unreadable_stored_bytes_are_content_unavailable(
    db: Database, tmp_path: Path
) -> None:
    library = FileLibrary(SqlFileStore(db), tmp_path / "files", AudioCache(0))  # caches nothing
    file = await library.upload("tone.wav", tone_wav())
    library.path(file).write_bytes(b"garbage")
    with pytest.raises(ContentUnavailable, match="cannot be played"):
        await library.samples(file.id)
    library.path(file).unlink()
    with pytest.raises(ContentUnavailable, match="cannot be played"):
        await library.samples(file.id)


async def test_nothing_is_left_behind_when_the_store_fails(db: Database, tmp_path: Path) -> None:
    class FailingStore(SqlFileStore):
        def save(self, file: AudioFile) -> None:
            raise OSError("disk full")

    directory = tmp_path / "files"
    library = FileLibrary(FailingStore(db), directory, AudioCache(10**7))
    with pytest.raises(OSError, match="disk full"):
        await library.upload("tone.wav", tone_wav())
    await wait_until(lambda: list(directory.iterdir()) == [], timeout=5)


async def test_a_long_name_is_refused(library: FileLibrary) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await library.upload("x" * 256 + ".wav", tone_wav())
    assert list(refused.value.field_errors) == ["file"]
    assert not library.directory.exists() or leftovers(library.directory) == []


# -- the cache ----------------------------------------------------------------------------------


async def test_cache_evicts_the_least_recently_used_within_its_budget() -> None:
    cache = AudioCache(2000)  # room for two of 800 bytes

    async def load(value: int) -> np.ndarray:
        return np.full(400, value, np.int16)

    for key in ("a", "b"):
        await cache.get(key, lambda key=key: load(ord(key)))
    await cache.get("a", lambda: load(0))  # a is used again: b is now the oldest
    cache.put("c", np.zeros(400, np.int16))
    assert "a" in cache and "c" in cache and "b" not in cache
    assert cache.size_bytes == 1600
    cache.put("huge", np.zeros(2000, np.int16))  # larger than the whole budget: not kept
    assert "huge" not in cache and cache.size_bytes == 1600


async def test_cache_shares_one_load_and_keeps_no_failure() -> None:
    cache = AudioCache(10**6)
    started, release = asyncio.Event(), asyncio.Event()
    loads = 0

    async def slow() -> np.ndarray:
        nonlocal loads
        loads += 1
        started.set()
        await release.wait()
        return np.ones(10, np.int16)

    waiting = [asyncio.create_task(cache.get("k", slow)) for _ in range(5)]
    await asyncio.wait_for(started.wait(), 5)
    waiting[0].cancel()  # one caller giving up does not stop the others' load
    release.set()
    results = await asyncio.gather(*waiting[1:])
    assert loads == 1 and all(r is results[0] for r in results)

    async def failing() -> np.ndarray:
        nonlocal loads
        loads += 1
        raise ContentUnavailable("nope")

    for _ in range(2):
        with pytest.raises(ContentUnavailable):
            await cache.get("bad", failing)
    assert loads == 3 and "bad" not in cache


async def test_a_body_past_the_limit_is_refused_as_it_arrives(
    api: httpx.AsyncClient, gateway: Gateway
) -> None:
    """Not spooled whole first: reading stops soon after the limit, with or without a
    Content-Length."""
    chunk, sent = b"\0" * 65536, []

    async def endless() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n\r\n'
        for _ in range(10 * MAX_BYTES // len(chunk) + 10):
            sent.append(len(chunk))
            yield chunk

    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    response = await api.post(FILES, content=endless(), headers=headers)
    assert response.status_code == 400, response.text
    assert "larger than" in response.text
    assert sum(sent) < MAX_BYTES + 2 * 65536 + 65536  # stopped near the limit, not at 10x
    declared = {**headers, "Content-Length": str(10 * MAX_BYTES)}
    refused = await api.post(FILES, content=b"x", headers=declared)
    assert refused.status_code == 400 and "larger than" in refused.text
