"""Take ``docs/softphone.png``: the softphone page signed in, with a call from the app ringing.

Against a running gateway (``make run``), with the API key it printed:

    PYTHONPATH=. .venv/bin/python docs/screenshot_softphone.py --key "$(cat data/api-key)"

It creates the calls configuration ``softphone-demo`` if missing, signs the page in as
``alice`` with a token, places a call to her, takes the picture and hangs the call up.
Uses the tests' headless Chromium (Playwright with Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import httpx

from tests.webrtc.browser import chromium, open_softphone

CONFIG = "softphone-demo"


async def screenshot(gateway: str, key: str, out: Path) -> None:
    async with httpx.AsyncClient(base_url=gateway, headers={"Authorization": f"App {key}"}) as api:
        if (await api.get(f"/calls/1/configurations/{CONFIG}")).status_code == 404:
            created = await api.post("/calls/1/configurations", json={"id": CONFIG})
            created.raise_for_status()
        body = {"identity": "alice", "displayName": "Alice", "applicationId": CONFIG}
        token = (await api.post("/webrtc/1/token", json=body)).raise_for_status().json()["token"]
        with tempfile.TemporaryDirectory() as tmp:
            async with chromium(Path(tmp), 440) as browser:
                viewport = {"width": 372, "height": 560}
                page = await open_softphone(
                    browser, gateway, token, viewport=viewport, device_scale_factor=2
                )
                placed = await api.post(
                    "/calls/1/calls",
                    json={
                        "endpoint": {"type": "WEBRTC", "identity": "alice"},
                        "from": "441134960100",
                        "fromDisplayName": "Reception",
                        "callsConfigurationId": CONFIG,
                    },
                )
                call_id = placed.raise_for_status().json()["id"]
                try:
                    await page.locator("#answer").wait_for(state="visible", timeout=5000)
                    await page.screenshot(path=str(out), full_page=True)
                finally:
                    await api.post(f"/calls/1/calls/{call_id}/hangup", json={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--key", required=True, help="the gateway's API key")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("softphone.png"))
    args = parser.parse_args()
    asyncio.run(screenshot(args.gateway, args.key, args.out))


if __name__ == "__main__":
    main()
