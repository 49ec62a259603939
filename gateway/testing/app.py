"""Setting up a voice app against the gateway in a test: a calls configuration, a subscription
that sends its call events to a webhook (usually a ``WebhookRecorder``'s URL), and the numbers
that ring it.

    async with WebhookRecorder() as recorder:
        await prepare_app(api, recorder.url, "my-app", numbers=["441134960100"])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import numpy as np

from gateway.media.frame import NARROWBAND
from gateway.testing.audio import read_wav

CALL_EVENTS = [
    "CALL_RECEIVED", "CALL_STARTED", "CALL_RINGING", "CALL_PRE_ESTABLISHED",
    "CALL_ESTABLISHED", "CALL_FINISHED", "CALL_FAILED",
]  # fmt: skip


async def prepare_app(
    api: httpx.AsyncClient,
    notify_url: str,
    config_id: str,
    *,
    numbers: Iterable[str] = (),
    events: Iterable[str] = CALL_EVENTS,
    create_configuration: bool = True,
    simulated: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
) -> None:
    """Create (unless it exists already) the configuration, subscribe, link the numbers, and
    add ``simulated`` phones to the simulated PSTN (``{number: (behaviour, options)}``)."""
    if create_configuration:
        created = await api.post("/calls/1/configurations", json={"id": config_id})
        assert created.status_code == 201, created.text
    subscription = {
        "subscriptionId": f"{config_id}-events",
        "name": config_id,
        "events": list(events),
        "criteria": [{"callsConfigurationId": config_id}],
        "profile": {"profileId": f"{config_id}-webhook", "webhook": {"notifyUrl": notify_url}},
    }
    subscribed = await api.post("/subscriptions/1/subscription/VOICE_VIDEO", json=subscription)
    assert subscribed.status_code == 201, subscribed.text
    for number in numbers:
        linked = await api.put(
            f"/gateway/1/numbers/{number}", json={"callsConfigurationId": config_id}
        )
        assert linked.status_code == 200, linked.text
    for number, (behaviour, options) in (simulated or {}).items():
        body = {"number": number, "behaviour": behaviour, "options": dict(options)}
        added = await api.post("/pstn/1/numbers", json=body)
        assert added.status_code == 201, added.text


async def phone_heard(api: httpx.AsyncClient, call_id: str) -> np.ndarray:
    """What a simulated phone has heard so far (``GET /pstn/1/calls/{callId}/heard``), as
    8 kHz float64 samples."""
    response = await api.get(f"/pstn/1/calls/{call_id}/heard")
    assert response.status_code == 200, response.text
    pcm, rate = read_wav(response.content)
    assert rate == NARROWBAND
    return pcm.astype(np.float64)
