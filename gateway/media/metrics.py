"""The live RTP sessions and their counters in the Prometheus text exposition format (0.0.4).

Rendering reads counters the hot path already keeps; nothing here runs per packet.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol


class Counted(Protocol):
    """What is rendered of a session: its call and its counters (see ``RtpCounters``)."""

    call_id: str

    @property
    def counters(self) -> _Counters: ...


class _Counters(Protocol):
    packets_in: int
    packets_out: int
    bytes_in: int
    bytes_out: int
    dropped_malformed: int
    dropped_foreign: int
    send_errors: int
    late: int


class SessionRegistry:
    """The sessions alive now; a session adds itself on start and removes itself on close."""

    def __init__(self) -> None:
        self._sessions: dict[int, Counted] = {}

    def add(self, session: Counted) -> None:
        self._sessions[id(session)] = session

    def discard(self, session: Counted) -> None:
        self._sessions.pop(id(session), None)

    def __iter__(self) -> Iterator[Counted]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and line feed, and nothing else."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# name, help, label, and the counter behind each label value.
_FAMILIES = (
    (
        "gateway_rtp_packets_total",
        "RTP packets received and sent.",
        "direction",
        (("in", "packets_in"), ("out", "packets_out")),
    ),
    (
        "gateway_rtp_bytes_total",
        "RTP datagram octets received and sent.",
        "direction",
        (("in", "bytes_in"), ("out", "bytes_out")),
    ),
    (
        "gateway_rtp_dropped_total",
        "RTP packets dropped, by reason (unsent: the socket refused to send it).",
        "reason",
        (
            ("malformed", "dropped_malformed"),
            ("foreign", "dropped_foreign"),
            ("late", "late"),
            ("unsent", "send_errors"),
        ),
    ),
)


def render_prometheus(sessions: Iterable[Counted]) -> str:
    """The text page for a scrape. Sessions sharing a call id (legs do not in the Calls API,
    but a re-created session might) are summed: a series may appear only once."""
    live = list(sessions)
    by_call: dict[str, list[_Counters]] = {}
    for session in live:
        by_call.setdefault(session.call_id, []).append(session.counters)
    lines = [
        "# HELP gateway_rtp_sessions Live RTP sessions.",
        "# TYPE gateway_rtp_sessions gauge",
        f"gateway_rtp_sessions {len(live)}",
    ]
    for name, help_text, label, values in _FAMILIES:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} counter")
        for call_id, counters in sorted(by_call.items()):
            call = escape_label(call_id)
            for value, field in values:
                total = sum(getattr(c, field) for c in counters)
                lines.append(f'{name}{{call_id="{call}",{label}="{value}"}} {total}')
    return "\n".join(lines) + "\n"
