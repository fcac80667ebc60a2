"""Per-turn voice-to-voice latency, built on Pipecat's UserBotLatencyObserver: each measured turn
is logged and sent to the page as an RTVI server message."""

from __future__ import annotations

from loguru import logger
from pipecat.observers.user_bot_latency_observer import LatencyBreakdown, UserBotLatencyObserver
from pipecat.processors.frameworks.rtvi import RTVIProcessor

MESSAGE_KIND = "turn-latency"


def turn_message(turn: int, breakdown: LatencyBreakdown) -> dict:
    """The RTVI server message the page renders for one turn."""
    return {
        "kind": MESSAGE_KIND,
        "turn": turn,
        "total_ms": round(breakdown.total_secs * 1000, 1),
        "stages": [
            {"label": c.label, "owner": c.owner, "ms": round(c.duration_secs * 1000, 1)}
            for c in breakdown.contributions
        ],
    }


def attach_latency_reporting(observer: UserBotLatencyObserver, rtvi: RTVIProcessor | None) -> None:
    turns = 0

    @observer.event_handler("on_latency_breakdown")
    async def on_latency_breakdown(_, breakdown: LatencyBreakdown):
        nonlocal turns
        turns += 1
        message = turn_message(turns, breakdown)
        logger.info(
            f"turn {turns}: voice-to-voice {message['total_ms']} ms | "
            + ", ".join(f"{s['label']} {s['ms']} ms" for s in message["stages"])
        )
        if rtvi is not None:
            await rtvi.send_server_message(message)
