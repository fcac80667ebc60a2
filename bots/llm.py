"""The bot's LLM: Nemotron 3 Nano on our vLLM server (`python -m services.llm`).

Pipecat's NVIDIA service already routes reasoning away from speech: `reasoning` deltas (what
vLLM's `nemotron_v3` parser splits off) and a leading `<think>` block become `LLMThought*Frame`s,
which the TTS never speaks. We point it at vLLM and turn Nemotron's thinking off, since a
voice turn cannot wait for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from openai import APIConnectionError, APITimeoutError
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.nvidia.llm import NvidiaLLMService

import settings
from bots.tools import TOOLS

DEFAULT_URL = settings.address("llm", {})
# The name `services.llm` serves the model under, whatever checkpoint the profile picked.
DEFAULT_SERVED_MODEL_NAME = settings.LLM_SERVED_MODEL_NAME

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
            api_key=config.api_key, base_url=config.url, settings=default_settings, **kwargs
        )
        self._url = config.url

    async def get_chat_completions(self, context: LLMContext):
        try:
            return await super().get_chat_completions(context)
        except APITimeoutError:
            raise  # the base class reports timeouts as such
        except APIConnectionError as e:
            # The base class logs and pushes this as an ErrorFrame; say where we looked.
            raise ConnectionError(f"cannot reach the LLM server at {self._url}: {e}") from e


def create_context(messages: list[dict] | None = None) -> LLMContext:
    """A conversation that offers the bot's tools; the system prompt lives in the service."""
    return LLMContext(messages=messages or [], tools=TOOLS)
