"""The bot's LLM service (bots/llm.py) against a real vLLM: its CPU build, the real `nemotron_v3`
reasoning parser and `qwen3_coder` tool parser, and a tiny model trained to give scripted replies
in Nemotron 3 Nano's chat format (tests/models/train_tiny_llm.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import pytest
from openai import AsyncOpenAI
from pipecat.frames.frames import (
    AggregatedTextFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
    LLMThoughtStartFrame,
    LLMThoughtTextFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.workers.runner import WorkerRunner
from tokenizers import Tokenizer

from bots.llm import LLMConfig, NemotronLLMService, create_context
from services.llm.profiles import SERVED_MODEL_NAME
from tests.llm_helpers import poll
from tests.models.train_tiny_llm import MODEL_DIR, SCRIPTS, SKY
from tests.process_helpers import free_port

REASONING = SCRIPTS["sky_thinking"].reply.split("</think>")[0]
# Whole turns as the trained tiny ASR writes them, and their scripted spoken replies.
SPOKEN_TURNS = {
    s.messages[0]["content"]: s.reply
    for s in SCRIPTS.values()
    if "spoken" in s.name and len(s.messages) == 1 and "<tool_call>" not in s.reply
}

# Generous guards against a hang; no test measures time.
WAIT_S = 120
# What the barge-in test asks for: over a minute of generation on a CPU, should nothing stop it.
MAX_TOKENS = 30000


class Recorder(FrameProcessor):
    """Passes every frame on and keeps those going one way."""

    def __init__(self, direction: FrameDirection):
        super().__init__(enable_direct_mode=True)
        self.direction = direction
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if direction == self.direction:
            self.frames.append(frame)
        await self.push_frame(frame, direction)

    def of(self, kind: type) -> list:
        return [f for f in self.frames if type(f) is kind]

    def text(self, kind: type) -> str:
        return "".join(f.text for f in self.of(kind))


class SilentTTS(TTSService):
    """Pipecat's own TTS path (sentence aggregation, TTSTextFrames) with silence for audio."""

    def __init__(self):
        super().__init__(
            sample_rate=16000,
            push_start_frame=True,
            settings=TTSSettings(model=None, voice=None, language=None),
        )

    async def run_tts(self, text: str, context_id: str):
        yield TTSAudioRawFrame(b"\0\0" * 160, 16000, 1, context_id=context_id)


@contextlib.asynccontextmanager
async def pipeline(*processors: FrameProcessor):
    """Runs `processors` between two recorders; yields (worker, upstream, downstream)."""
    up, down = Recorder(FrameDirection.UPSTREAM), Recorder(FrameDirection.DOWNSTREAM)
    # No RTVI, as in Pipecat's run_test: its observer rescans the whole reply on every token,
    # which stalls the loop on the endless test replies.
    worker = PipelineWorker(
        Pipeline([up, *processors, down]), cancel_on_idle_timeout=False, enable_rtvi=False
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(worker, frame):
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), WAIT_S)
    try:
        yield worker, up, down
    finally:
        await worker.queue_frame(EndFrame())
        await asyncio.wait_for(running, WAIT_S)


def service(url: str, enable_thinking: bool = False, **settings) -> NemotronLLMService:
    """The bot's LLM service, greedy so that the scripted model gives its scripted replies."""
    return NemotronLLMService(
        LLMConfig(url=url),
        enable_thinking=enable_thinking,
        settings=NemotronLLMService.Settings(temperature=0, **settings),
    )


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def responses_done(down: Recorder, n: int = 1):
    return lambda: len(down.of(LLMFullResponseEndFrame)) >= n


async def ask(llm: NemotronLLMService, question: str) -> tuple[Recorder, Recorder, Recorder]:
    """One turn through LLM -> TTS: (frames sent upstream, out of the LLM, out of the TTS)."""
    llm_out = Recorder(FrameDirection.DOWNSTREAM)
    async with pipeline(llm, llm_out, SilentTTS()) as (worker, up, tts_out):
        await worker.queue_frame(LLMContextFrame(create_context([_user(question)])))
        assert await poll(responses_done(tts_out), WAIT_S)
    return up, llm_out, tts_out


async def test_replies_stream_token_by_token(vllm_server):
    story = SCRIPTS["story"].reply
    async with pipeline(endless(vllm_server)) as (worker, up, down):
        await worker.queue_frame(LLMContextFrame(create_context([_user("Tell me a story.")])))
        assert await poll(lambda: len(down.text(LLMTextFrame)) > len(story), WAIT_S)
        # The whole story is here while vLLM is still generating: it was streamed, not buffered.
        assert (await asyncio.to_thread(vllm_server.metrics))["vllm:num_requests_running"] == 1
        await worker.queue_frame(InterruptionFrame())
        assert await poll(lambda: idle(vllm_server), WAIT_S)
    # As vLLM streams it: a frame per token, or a few tokens in one frame when the client falls
    # behind, never a token cut in two.
    assert down.text(LLMTextFrame).startswith(story)
    tokenizer = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tokens = [tokenizer.decode([i]) for i in tokenizer.encode(story).ids]
    ends = itertools.accumulate(len(f.text) for f in down.of(LLMTextFrame))
    assert {e for e in ends if e <= len(story)} <= set(itertools.accumulate(map(len, tokens)))
    assert not up.of(ErrorFrame)


async def test_thinking_is_off_unless_asked_for(vllm_server):
    _, llm_out, tts_out = await ask(service(f"{vllm_server.url}/v1"), "Why is the sky blue?")
    # With enable_thinking false the template closes the think block before the model speaks.
    assert not llm_out.of(LLMThoughtStartFrame) and not llm_out.of(LLMThoughtTextFrame)
    assert llm_out.text(LLMTextFrame) == SKY
    assert [f.text.strip() for f in tts_out.of(TTSTextFrame)] == [SKY]


async def test_vllm_sends_reasoning_apart_from_the_answer(vllm_server):
    # On the wire, below the bot: the nemotron_v3 parser splits the model's <think> text off.
    client = AsyncOpenAI(base_url=f"{vllm_server.url}/v1", api_key="unused")
    stream = await client.chat.completions.create(
        model=SERVED_MODEL_NAME,
        messages=[_user("Why is the sky blue?")],
        temperature=0,
        stream=True,
        extra_body={"chat_template_kwargs": {"enable_thinking": True}},
    )
    reasoning, content = [], []
    async for chunk in stream:
        if chunk.choices:
            reasoning.append(getattr(chunk.choices[0].delta, "reasoning", None) or "")
            content.append(chunk.choices[0].delta.content or "")
    assert "".join(reasoning) == REASONING
    assert "".join(content) == SKY


async def test_reasoning_is_never_spoken(vllm_server):
    llm = service(f"{vllm_server.url}/v1", enable_thinking=True)
    _, llm_out, tts_out = await ask(llm, "Why is the sky blue?")
    # Pipecat's NVIDIA service turns `reasoning` deltas into thought frames, which TTS skips.
    assert llm_out.text(LLMThoughtTextFrame) == REASONING
    assert llm_out.text(LLMTextFrame) == SKY
    assert [f.text.strip() for f in tts_out.of(AggregatedTextFrame)] == [SKY]  # what TTS got
    assert [f.text.strip() for f in tts_out.of(TTSTextFrame)] == [SKY]  # and what it said


@pytest.mark.parametrize("question", ["What is 12 times 7?", "What is twelve times seven?"])
async def test_a_tool_call_runs_the_tool_and_its_answer_is_spoken(vllm_server, question):
    """Typed, and as the tiny ASR writes it spoken."""
    llm = service(f"{vllm_server.url}/v1")
    context = create_context([_user(question)])
    tts_out = Recorder(FrameDirection.DOWNSTREAM)
    aggregators = LLMContextAggregatorPair(context)
    async with pipeline(llm, SilentTTS(), tts_out, aggregators.assistant()) as (worker, _, _):
        await worker.queue_frame(LLMContextFrame(context))
        # The first response is the call; the aggregator adds the tool's result to the context
        # and asks again, and the second response is spoken and added too.
        assert await poll(lambda: len(context.get_messages()) == 4, WAIT_S)
    results = tts_out.of(FunctionCallResultFrame)
    assert [(r.function_name, r.result) for r in results] == [
        ("calculate", {"expression": "12 * 7", "result": 84})
    ]
    assert [f.text.strip() for f in tts_out.of(TTSTextFrame)] == ["12 times 7 is 84."]
    _, call, result, answer = context.get_messages()
    assert call["tool_calls"][0]["function"]["arguments"] == '{"expression": "12 * 7"}'
    assert result["content"] == '{"expression": "12 * 7", "result": 84}'
    assert answer == {"role": "assistant", "content": "12 times 7 is 84."}


async def test_every_spoken_turn_gets_its_scripted_reply(vllm_server):
    """Through the bot's service (its system prompt and tools), as the bot sends a final
    transcript: answers and backchannels, with the capitals and punctuation the ASR writes."""
    got = {}
    for turn in SPOKEN_TURNS:
        _, llm_out, _ = await ask(service(f"{vllm_server.url}/v1"), turn)
        got[turn] = llm_out.text(LLMTextFrame)
    assert got == SPOKEN_TURNS


async def test_barge_in_stops_the_request_on_the_server(vllm_server):
    """vLLM counts a request that ends by a stop or its token limit, but not one the client
    dropped: a request that leaves the engine with no count added was cancelled."""
    before = vllm_server.metrics()
    async with pipeline(endless(vllm_server)) as (worker, _, down):
        await worker.queue_frame(LLMContextFrame(create_context([_user("Tell me a story.")])))
        assert await poll(lambda: down.of(LLMTextFrame), WAIT_S)
        await worker.queue_frame(InterruptionFrame())
        # The request leaves the engine...
        assert await poll(lambda: idle(vllm_server), WAIT_S)
    after = vllm_server.metrics()
    # ...without finishing: no request ended with a stop or at its token limit.
    assert finished(after) == finished(before)
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert 0 < generated < MAX_TOKENS
    # The server is free for the next turn.
    _, llm_out, _ = await ask(service(f"{vllm_server.url}/v1"), "Hello!")
    assert llm_out.text(LLMTextFrame) == SCRIPTS["hello"].reply


def endless(vllm_server) -> NemotronLLMService:
    """The story, then more text up to MAX_TOKENS: only a cancel stops it sooner.

    vLLM notices a client has gone when it next sends it something, so the text must go on;
    with `ignore_eos` instead, the model would go on silently after the story.
    """
    return service(
        f"{vllm_server.url}/v1",
        max_tokens=MAX_TOKENS,
        extra={
            "extra_body": {
                "chat_template_kwargs": {"enable_thinking": False},
                "min_tokens": MAX_TOKENS,
            }
        },
    )


async def idle(vllm_server) -> bool:
    metrics = await asyncio.to_thread(vllm_server.metrics)
    return metrics["vllm:num_requests_running"] + metrics["vllm:num_requests_waiting"] == 0


def finished(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith("vllm:request_success_total")}


async def test_a_server_that_is_down_gives_a_clear_error_not_a_hang():
    url = f"http://127.0.0.1:{free_port()}/v1"
    # ask() returns once the response has ended.
    up, llm_out, _ = await ask(service(url), "Hello!")
    errors = up.of(ErrorFrame)
    assert len(errors) == 1 and not errors[0].fatal
    assert f"cannot reach the LLM server at {url}" in errors[0].error
    assert not llm_out.of(LLMTextFrame)
