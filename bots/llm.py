"""The bot's LLM: Nemotron 3 Nano on our vLLM server (`python -m services.llm`).

Pipecat's NVIDIA service already routes reasoning away from speech: `reasoning` deltas (what
vLLM's `nemotron_v3` parser splits off) and a leading `<think>` block become `LLMThought*Frame`s,
which the TTS never speaks. We point it at vLLM and turn Nemotron's thinking off, since a
voice turn cannot wait for it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import aiohttp
from loguru import logger
from openai import APIConnectionError, APITimeoutError, OpenAIError
from pipecat.frames.frames import Frame, TTSSpeakFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.nvidia.llm import NvidiaLLMService

import settings
from bots.tools import TOOLS
from protocol.auth import auth_headers, modal_proxy_headers

DEFAULT_URL = settings.address("llm", {})
# The name `services.llm` serves the model under, whatever checkpoint the profile picked.
DEFAULT_SERVED_MODEL_NAME = settings.LLM_SERVED_MODEL_NAME

# Spoken when a reply fails (vLLM restarting or down) instead of nothing.
LLM_FAILED_APOLOGY = "Sorry, give me a moment."
# How often a down LLM server's /health is asked whether it is back.
HEALTH_POLL_SECONDS = 1.0

VOICE_SYSTEM_PROMPT = (
    "You are a friendly voice assistant in a live spoken conversation. Everything you write is "
    "read aloud, so answer in one or two short spoken sentences. Never use markdown, lists, "
    "headings, code or emoji. Say numbers, dates and times the way a person would say them. "
    "Call a tool for the date, the time or any arithmetic instead of guessing. If you did not "
    "catch what the user said, ask them to say it again."
)


@dataclass(frozen=True)
class LLMConfig:
    url: str = DEFAULT_URL
    model: str = DEFAULT_SERVED_MODEL_NAME
    api_key: str | None = None
    system_prompt: str = VOICE_SYSTEM_PROMPT

    @classmethod
    def from_env(cls) -> LLMConfig:
        env = os.environ.get
        return cls(
            url=settings.address("llm"),
            model=env("LLM_SERVED_MODEL_NAME") or DEFAULT_SERVED_MODEL_NAME,
            api_key=env("NEMOTRON_API_KEY") or None,
            system_prompt=env("LLM_SYSTEM_PROMPT") or VOICE_SYSTEM_PROMPT,
        )


class NemotronLLMService(NvidiaLLMService):
    """Pipecat's NVIDIA LLM service against our vLLM, with Nemotron's thinking off by default."""

    def __init__(
        self,
        config: LLMConfig,
        *,
        enable_thinking: bool = False,
        settings: NvidiaLLMService.Settings | None = None,
        **kwargs,
    ):
        default_settings = self.Settings(
            model=config.model,
            system_instruction=config.system_prompt,
            # vLLM hands chat_template_kwargs to the chat template and to its reasoning parser.
            extra={"extra_body": {"chat_template_kwargs": {"enable_thinking": enable_thinking}}},
        )
        if settings is not None:
            default_settings.apply_update(settings)
        super().__init__(
            api_key=config.api_key,
            base_url=config.url,
            settings=default_settings,
            default_headers=modal_proxy_headers(),  # the key goes as the OpenAI client's own
            **kwargs,
        )
        self._url = config.url
        self._api_key = config.api_key
        # Raised, like the STT's and TTS's, when a failed reply finds the server down and when
        # its /health answers again (bots/service_status.py tells the page).
        self._register_event_handler("on_disconnected")
        self._register_event_handler("on_connected")
        self._back_watch: asyncio.Task | None = None
        self._stopping = False
        self._reply_failed = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if self._reply_failed:
            # After the failed reply's end, so that the TTS has spoken what came before the
            # failure first (a TTSSpeakFrame goes straight to synthesis).
            self._reply_failed = False
            await self.push_frame(TTSSpeakFrame(LLM_FAILED_APOLOGY))

    async def _process_context(self, context: LLMContext):
        try:
            await super()._process_context(context)
        except Exception as e:
            # Silence would leave the user wondering: say so, and the next turn retries. The
            # base class still reports the error; the user's turn stays in the context.
            logger.warning(f"{self}: the reply failed ({e}); apologising")
            self._reply_failed = True
            await self._watch_until_back()
            raise

    async def _watch_until_back(self):
        """After a failed reply: if the server is down, says so and watches for it to be back."""
        if (self._back_watch and not self._back_watch.done()) or await self.healthy():
            return
        await self._call_event_handler("on_disconnected")
        self._back_watch = self.create_task(self._wait_until_healthy())

    async def _wait_until_healthy(self):
        # Polled: a process the supervisor restarts has nothing to push to us.
        while True:
            if await self.healthy():
                break
            await asyncio.sleep(HEALTH_POLL_SECONDS)
        logger.info(f"{self}: the LLM server is back")
        await self._call_event_handler("on_connected")

    async def healthy(self) -> bool:
        """Whether vLLM's /health answers OK (it does once the model is loaded)."""
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
                async with http.get(
                    _server_url(self._url) + "/health", headers=auth_headers(self._api_key)
                ) as resp:
                    return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def cleanup(self):
        self._stopping = True
        if self._back_watch:
            await self.cancel_task(self._back_watch)
        await super().cleanup()

    async def get_chat_completions(self, context: LLMContext):
        try:
            return await super().get_chat_completions(context)
        except APITimeoutError:
            raise  # the base class reports timeouts as such
        except APIConnectionError as e:
            # The base class logs and pushes this as an ErrorFrame; say where we looked.
            raise ConnectionError(f"cannot reach the LLM server at {self._url}: {e}") from e

    async def warm_prefix_cache(self) -> dict | None:
        """Sends the bot's system prompt and tools once (one token out), so that vLLM has the
        prompt prefix every turn starts with in its prefix cache before the first turn. Returns
        and logs the prefix-cache counters vLLM reports, None when it reports none."""
        warm_up = create_context([{"role": "user", "content": "Hello!"}])
        try:
            for _ in range(2):  # the second request is the one that shows the hit
                await self.run_inference(warm_up, max_tokens=1)
        except OpenAIError as e:
            logger.warning(f"{self}: LLM prefix cache not warmed ({e})")
            return None
        stats = await prefix_cache_stats(self._url, self._api_key)
        if not stats or not stats["queries"]:
            logger.info(f"{self}: prompt sent ahead; vLLM reports no prefix-cache use (is it off?)")
        else:
            logger.info(
                f"{self}: prefix cache warmed: {stats['hits']:.0f} of {stats['queries']:.0f}"
                " prompt tokens served from vLLM's prefix cache so far"
            )
        return stats


async def prefix_cache_stats(url: str, api_key: str | None = None) -> dict | None:
    """vLLM's prefix-cache counters from its /metrics: prompt tokens looked up and found."""
    metrics_url = _server_url(url) + "/metrics"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(metrics_url, headers=auth_headers(api_key)) as resp:
                text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    stats = {"queries": 0.0, "hits": 0.0}
    for line in text.splitlines():
        for key in stats:
            if line.startswith(f"vllm:prefix_cache_{key}_total"):
                stats[key] += float(line.rsplit(" ", 1)[1])
    return stats


def _server_url(url: str) -> str:
    """The server's root, from its OpenAI base URL (`http://host:port/v1`)."""
    return url.removesuffix("/").removesuffix("/v1")


def create_context(messages: list[dict] | None = None) -> LLMContext:
    """A conversation that offers the bot's tools; the system prompt lives in the service."""
    return LLMContext(messages=messages or [], tools=TOOLS)
