"""``gateway serve``: one asyncio process with the API, the store and the adapters."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from gateway.app import API_USERNAME, Gateway
from gateway.settings import Settings, load_settings


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its own shutdown, which would kill the process before
    the gateway ends its calls and closes the store; here the signals only ask it to exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def serve(settings: Settings) -> None:
    gateway = Gateway.build(settings)
    await gateway.start()
    server = _Server(
        uvicorn.Config(
            gateway.api,
            host=settings.http_host,
            port=settings.http_port,
            log_level=settings.log_level,
            access_log=False,
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                await serving
                raise SystemExit(f"could not listen on {settings.http_host}:{settings.http_port}")
            await asyncio.sleep(0.02)
        if gateway.development_key:
            print(
                f"development API key (stored in {settings.data_dir}/api-key): "
                f"Authorization: App {gateway.api_key}  (Basic user: {API_USERNAME})",
                flush=True,
            )
        print(f"gateway ready on http://{settings.http_host}:{settings.http_port}", flush=True)
        await serving
    finally:
        await gateway.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the gateway")
    serve_parser.add_argument("--config", type=Path, help="settings file (TOML)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as error:
        print(f"gateway: bad settings: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per webhook POST is noise
    if settings.event_loop == "uvloop":
        import uvloop  # per-packet work decides capacity; uvloop's loop is several times faster

        uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
