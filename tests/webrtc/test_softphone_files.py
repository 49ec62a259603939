"""The softphone's static files are served without the API key, and nothing else is."""

from __future__ import annotations

import httpx

from gateway.app import Gateway


async def test_the_page_and_its_files_need_no_key(gateway: Gateway):
    transport = httpx.ASGITransport(app=gateway.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as anonymous:
        page = await anonymous.get("/webrtc/phone")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="/webrtc/static/softphone.js">' in page.text
        scripts = {
            n: await anonymous.get(f"/webrtc/static/{n}")
            for n in ("softphone.js", "webrtc-client.js")
        }
        for script in scripts.values():
            assert script.status_code == 200
            assert script.headers["content-type"].startswith("text/javascript")
        assert "export class WebRtcClient" in scripts["webrtc-client.js"].text
        assert (await anonymous.get("/webrtc/static/softphone.css")).status_code == 200
        for missing in ("__init__.py", "nope.js", "..%2Fapp.py"):
            assert (await anonymous.get(f"/webrtc/static/{missing}")).status_code == 404
        token = await anonymous.post("/webrtc/1/token", json={"identity": "alice"})
        assert token.status_code == 401  # the API itself still wants the key
