"""A webhook receiver for tests: a real HTTP server on loopback that records what it is sent.

Point a subscription's ``notifyUrl`` at ``recorder.url`` and wait for events::

    async with WebhookRecorder() as recorder:
        ...  # create a subscription to recorder.url, place a call
        events = await recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
        assert recorder.types(call_id) == ["CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED"]

It runs in the caller's event loop (HTTP/1.1 by h11 over asyncio streams, keep-alive included),
can answer with an error status (``fail_with``) and can be stopped and started again on the same
port, so that a sender sees a refused connection in between. Waiting never polls: ``wait_for``
sleeps on a condition that every arriving request notifies.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import h11

Event = dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    """One POST, in arrival order; header names are lower-case."""

    index: int
    path: str
    headers: dict[str, str]
    body: bytes
    event: Any
    status: int

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class _Failure:
    status: int
    remaining: int | None
    when: Callable[[Event], bool] | None

    def applies(self, event: Any) -> bool:
        return (self.remaining is None or self.remaining > 0) and (
            self.when is None or self.when(event)
        )


class WebhookRecorder:
    """Records webhook POSTs on ``127.0.0.1``; an ephemeral port unless ``port`` is given.

    ``requests`` holds every POST with the status it got; ``events()`` only the accepted ones.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/webhook") -> None:
        self.host = host
        self.port = port
        self.path = path
        self.requests: list[RecordedRequest] = []
        self._failure: _Failure | None = None
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("start the recorder first: its port is chosen on start")
        return f"http://{self.host}:{self.port}{self.path}"

    async def start(self) -> None:
        """Listen; after a ``stop`` this reuses the port chosen by the first start."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listening socket and every open connection: senders get refused."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._connections.values()):
            writer.transport.abort()  # the handler sees end of stream and returns
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> WebhookRecorder:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def fail_with(
        self,
        status: int = 503,
        *,
        times: int | None = None,
        when: Callable[[Event], bool] | None = None,
    ) -> None:
        """Answer ``status`` instead of 200: to the next ``times`` requests (every one if None),
        or only to events for which ``when(event)`` is true. Rejected requests are recorded too.
        """
        self._failure = _Failure(status, times, when)

    def recover(self) -> None:
        """Accept every request again."""
        self._failure = None

    def events(self, call_id: str | None = None, *, rejected: bool = False) -> list[Event]:
        """Bodies of the accepted requests (or of the rejected ones), in arrival order."""
        return [
            r.event
            for r in self.requests
            if r.accepted != rejected
            and isinstance(r.event, dict)
            and (call_id is None or r.event.get("callId") == call_id)
        ]

    def types(self, call_id: str | None = None) -> list[str]:
        """``type`` of each accepted event, in arrival order."""
        return [event.get("type", "") for event in self.events(call_id)]

    async def wait_for(
        self,
        count: int | None = None,
        types: Iterable[str] | None = None,
        call_id: str | None = None,
        predicate: Callable[[Event], bool] | None = None,
        timeout: float = 10.0,
        *,
        rejected: bool = False,
    ) -> list[Event]:
        """Wait until the wanted events have arrived and return every matching one.

        Matching events are those for ``call_id``, passing ``predicate`` and, when ``types`` is
        given, of one of those types. Done when ``count`` of them arrived; else, with ``types``,
        when each listed type arrived (as many times as listed); else when any arrived.
        ``rejected=True`` looks at requests answered with a ``fail_with`` status instead.
        Raises ``TimeoutError`` naming what did arrive.
        """
        wanted = Counter(types) if types is not None else None

        def matching() -> list[Event]:
            return [
                event
                for event in self.events(call_id, rejected=rejected)
                if (predicate is None or predicate(event))
                and (wanted is None or event.get("type") in wanted)
            ]

        def done() -> bool:
            found = matching()
            if count is not None:
                return len(found) >= count
            if wanted is not None:
                return not wanted - Counter(event.get("type") for event in found)
            return bool(found)

        try:
            async with asyncio.timeout(timeout):
                async with self._arrived:
                    await self._arrived.wait_for(done)
        except TimeoutError:
            raise TimeoutError(
                f"waited {timeout}s for count={count} types={types} call_id={call_id};"
                f" arrived: {self._summary() or 'nothing'}"
            ) from None
        return matching()

    def _summary(self) -> str:
        def describe(r: RecordedRequest) -> str:
            event = r.event if isinstance(r.event, dict) else {}
            return f"#{r.index} {event.get('type')} callId={event.get('callId')} -> {r.status}"

        return "; ".join(describe(r) for r in self.requests)

    def _answer(self, request: h11.Request, body: bytes) -> int:
        if request.method != b"POST":
            return 405
        try:
            event = json.loads(body)
        except ValueError:
            event, status = None, 400
        else:
            status = 200
            if self._failure is not None and self._failure.applies(event):
                status = self._failure.status
                if self._failure.remaining is not None:
                    self._failure.remaining -= 1
        headers = {name.decode().lower(): value.decode() for name, value in request.headers}
        path = request.target.decode()
        self.requests.append(
            RecordedRequest(len(self.requests), path, headers, body, event, status)
        )
        return status

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        connection = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    request, body = event, bytearray()
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage) and request is not None:
                    status = self._answer(request, bytes(body))
                    async with self._arrived:
                        self._arrived.notify_all()
                    response = h11.Response(status_code=status, headers=[("content-length", "0")])
                    writer.write(connection.send(response) + connection.send(h11.EndOfMessage()))
                    await writer.drain()
                    if connection.our_state is not h11.DONE:
                        break
                    connection.start_next_cycle()
                else:
                    break  # ConnectionClosed or PAUSED with nothing more to do
        except (h11.ProtocolError, ConnectionError):
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()


async def _print_forever(host: str, port: int) -> None:
    async with WebhookRecorder(host, port) as recorder:
        print(f"recording webhooks at {recorder.url}", flush=True)
        shown = 0
        while True:
            await recorder.wait_for(count=shown + 1, timeout=float("inf"))
            for request in recorder.requests[shown:]:
                event = request.event if isinstance(request.event, dict) else {}
                print(f"--- {event.get('type')} callId={event.get('callId')}", flush=True)
                print(json.dumps(request.event, indent=2), flush=True)
            shown = len(recorder.requests)


def main(argv: list[str] | None = None) -> None:
    """``python -m gateway.testing.webhook_recorder --port 9000``: print every event received."""
    import argparse
    import contextlib

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_print_forever(args.host, args.port))


if __name__ == "__main__":
    main()
