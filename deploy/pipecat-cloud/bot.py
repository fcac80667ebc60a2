"""Pipecat Cloud's entry module: its base image imports `bot` from /app/bot.py and calls
`bot(runner_args)` once per session. The bot is bots/bot.py's, unchanged."""

from bots.bot import bot

__all__ = ["bot"]
