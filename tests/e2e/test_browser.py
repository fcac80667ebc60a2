"""Talking to the bot in a real browser: Debian Chromium with a WAV file as its microphone, our
page, WebRTC to the bot process, and the real ASR, LLM (vLLM CPU build) and TTS services on tiny
models. The ASR is trained on a few phrases (tests/models/train_tiny_asr.py) and the LLM scripted
(tests/models/train_tiny_llm.py), so the turn is checked by meaning: the spoken question reaches
the LLM as its words, the calculator runs, and the spoken reply says 84. The TTS has random
weights: its audio is checked as audio, not as words."""

import json
import os
import signal
import time
import wave

import numpy as np
import pytest

from tests.audio import speak, wav_bytes
from tests.browser import chromium
from tests.llm_helpers import poll
from tests.process_helpers import metric

QUESTION = "What is twelve times seven?"

INBOUND_AUDIO_JS = """async () => {
  const stats = await window.nemotron.pc.getStats();
  for (const s of stats.values())
    if (s.type === "inbound-rtp" && s.kind === "audio")
      return {bytes: s.bytesReceived, energy: s.totalAudioEnergy || 0};
  return {bytes: 0, energy: 0};
}"""
# The bot's reply to the user's first turn, once every part of it has been spoken.
SPOKEN_REPLY_JS = """() => {
  const reply = document.querySelector("#transcript li[data-role=user] ~ li[data-role=bot]");
  if (!reply || reply.querySelector(".pending")) return null;
  return {text: reply.textContent, unspoken: reply.querySelectorAll(".unspoken").length};
}"""


@pytest.fixture
def mic_wav(tmp_path):
    """The microphone, looping: 3 s of silence, the question, then 10 s of silence."""
    request = speak(QUESTION, rate=48000)
    pcm = np.concatenate([np.zeros(3 * 48000, np.int16), request, np.zeros(10 * 48000, np.int16)])
    path = tmp_path / "mic.wav"
    path.write_bytes(wav_bytes(pcm, rate=48000))
    return path


async def test_talk_to_the_bot_and_interrupt_it(product, mic_wav, tmp_path):
    """The user talks over the bot's long greeting (tests/e2e/conftest.py), then has a turn."""
    earlier_recordings = set(product.recordings.glob("*.wav"))  # other tests' sessions
    llm_requests = metric(product.http("llm"), "vllm:request_success_total")
    async with chromium(mic_wav, tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(f"{product.bot_url}/")
        # The page's choice of ASR latency mode reaches this session's ASR stream.
        await page.wait_for_selector("#latency option[value='80']", state="attached")
        await page.select_option("#latency", "80")
        steps_at_80 = metric(product.http("asr"), "asr_steps_total", latency_ms="80")
        await page.click("#connect")
        await page.wait_for_selector("#status[data-state=connected]", timeout=60_000)

        # The user talks over the greeting: the bot stops, and stays silent while the user talks.
        assert await poll(lambda: has_event(page, "bot-interrupted"), within=60)
        at_interruption = await inbound_audio(page)
        assert at_interruption["energy"] > 0, "the greeting never reached the browser"
        assert await poll(lambda: has_event(page, "user-stopped-speaking"), within=60)
        while_user_talks = await inbound_audio(page)
        assert (
            while_user_talks["energy"] - at_interruption["energy"]
            < 0.05 * (at_interruption["energy"])
        ), "the bot kept talking over the user"

        # The turn by meaning: the question's words on the page (what the LLM gets), the
        # calculator's call and result, and the reply that says 84, spoken to the end; the
        # turn's latency listed.
        await page.wait_for_selector("#transcript li[data-role=user]", timeout=60_000)
        user_text = await page.inner_text("#transcript li[data-role=user]")
        assert user_text.strip() == QUESTION
        tool = page.locator("#transcript li[data-role=tool]").first
        assert await poll(lambda: tool_finished(tool), within=60), "the calculator never ran"
        assert (await tool.inner_text()).strip() == "calculate(expression: 12 * 7) → 84"
        assert await poll(lambda: page.evaluate(SPOKEN_REPLY_JS), within=60), "no spoken reply"
        reply = await page.evaluate(SPOKEN_REPLY_JS)
        assert reply["text"].strip() == "12 times 7 is 84." and reply["unspoken"] == 0
        await page.wait_for_selector("#latency-rows tr", timeout=60_000)
        assert await poll(lambda: audio_grew(page, while_user_talks), within=60), (
            "no TTS audio reached the browser after the turn"
        )
        latency_row = await page.inner_text("#latency-rows tr")
        stage_bars = await page.locator("#latency-rows .timeline span").count()
        await page.screenshot(path=str(tmp_path / "page.png"))
        await page.click("#connect")  # disconnect: the session's recording is written
        await page.wait_for_selector("#status[data-state=idle]")
    assert "ms" in latency_row and stage_bars

    def new_recordings():
        return sorted(set(product.recordings.glob("*.wav")) - earlier_recordings)

    assert await poll(new_recordings, within=60), "no recording written"
    with wave.open(str(new_recordings()[0])) as recording:
        assert recording.getnchannels() == 2 and recording.getnframes() > 0  # user left, bot right
    assert metric(product.http("asr"), "asr_steps_total", latency_ms="80") > steps_at_80
    # This test's own requests: the tool call, and the answer after its result.
    assert metric(product.http("llm"), "vllm:request_success_total") - llm_requests >= 2


BOT_OUTPUT_JS = """() => {
  const out = (segment, status, text) => onRtviMessage({type: "bot-output", data: {
    text, segment_id: segment, will_be_spoken: true, spoken_status: status}});
  out(1, "new", "First sentence.");
  out(1, "completed", "First sentence.");
  out(2, "new", "Second sentence.");
  onRtviMessage({type: "bot-interrupted", data: {}});
  out(2, "completed", "Second sentence.");
  const reply = [...document.querySelectorAll("#transcript li[data-role=bot]")].pop();
  return [...reply.children].map((s) => [s.textContent.trim(), s.className]);
}"""


async def test_the_page_strikes_through_what_an_interruption_cut_off(product, mic_wav, tmp_path):
    """RTVI's bot-output reports each segment when new and again when spoken: the page shows it
    pending until spoken, and what the user's interruption cut off as not spoken."""
    async with chromium(mic_wav, tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(f"{product.bot_url}/")
        shown = await page.evaluate(BOT_OUTPUT_JS)
    assert shown == [["First sentence.", ""], ["Second sentence.", "unspoken"]]


async def inbound_audio(page) -> dict:
    """The browser's own count of the bot's audio: bytes received and energy played."""
    return await page.evaluate(INBOUND_AUDIO_JS)


async def tool_finished(tool) -> bool:
    return await tool.count() > 0 and "→" in await tool.inner_text()


async def has_event(page, kind: str) -> bool:
    return kind in await page.evaluate("window.nemotron.events")


async def audio_grew(page, before: dict) -> bool:
    now = await inbound_audio(page)
    return now["bytes"] > before["bytes"] and now["energy"] > before["energy"]


@pytest.fixture
def slow_mic(tmp_path):
    """The microphone, looping every 45 s (longer than an ASR restart): 3 s of silence, then
    the question."""
    request = speak(QUESTION, rate=48000)
    pcm = np.concatenate([np.zeros(3 * 48000, np.int16), request])
    pcm = np.concatenate([pcm, np.zeros(45 * 48000 - len(pcm), np.int16)])
    path = tmp_path / "slow.wav"
    path.write_bytes(wav_bytes(pcm, rate=48000))
    return path


USER_AND_BOT_LINES_JS = """() => [...document.querySelectorAll("#transcript li")]
  .filter((li) => li.dataset.role === "user" || li.dataset.role === "bot")
  .map((li) => [li.dataset.role, li.textContent.trim(), !li.querySelector(".pending")])"""


async def test_a_turn_spoken_while_the_asr_restarts_is_answered(product, slow_mic, tmp_path):
    """The ASR process is killed as the call starts, so the user's question comes while the
    supervisor restarts it: the page says the ASR is reconnecting, clears when it is back, and
    the question held meanwhile is transcribed and answered, in one latency record timed from
    when the user stopped. The user's next question, after the restart, is answered as usual."""
    async with chromium(slow_mic, tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(f"{product.bot_url}/")
        await page.click("#connect")
        await page.wait_for_selector("#status[data-state=connected]", timeout=60_000)
        killed_at = time.time()
        kill_service(product, "asr")
        await shows_reconnecting(page, "ASR")
        # Back once the supervisor has restarted it (about 25 s on two cores).
        await page.wait_for_selector("#status[data-state=connected]", timeout=240_000)
        back_at = time.time()

        async def two_turns_answered():
            lines = await page.evaluate(USER_AND_BOT_LINES_JS)
            replies = [text for role, text, spoken in lines if role == "bot" and spoken]
            return len([line for line in lines if line[0] == "user"]) >= 2 and len(replies) >= 3

        # The greeting, then both questions' replies, spoken to the end.
        assert await poll(two_turns_answered, within=180), await page.evaluate(
            USER_AND_BOT_LINES_JS
        )
        lines = await page.evaluate(USER_AND_BOT_LINES_JS)
    assert [text for role, text, _ in lines if role == "user"][:2] == [QUESTION, QUESTION]
    replies = [text for role, text, _ in lines if role == "bot"][1:3]
    assert all("84" in reply for reply in replies), lines
    (held_session,) = {
        r["session"] for r in latency_records(product, killed_at) if r["reconnect_delayed"]
    }
    records = [r for r in latency_records(product, killed_at) if r["session"] == held_session]
    assert not [r for r in records if r["unanswered"]], records
    held, after = records[:2]
    assert held["reconnect_delayed"] and not after["reconnect_delayed"], records
    print(
        f"ASR restart {back_at - killed_at:.1f} s; the question held meanwhile answered "
        f"{held['total_ms'] / 1000:.1f} s after the user stopped, "
        f"{held['speech_end'] + held['total_ms'] / 1000 - back_at:.1f} s after the ASR was back; "
        f"the next question {after['total_ms'] / 1000:.1f} s after the user stopped"
    )


def latency_records(product, since: float) -> list[dict]:
    """The bot's per-turn latency records (all sessions) for turns that ended after `since`."""
    lines = product.latency_log.read_text().splitlines() if product.latency_log.exists() else []
    return [r for r in map(json.loads, lines) if r["speech_end"] > since]


@pytest.fixture
def story_mic(tmp_path):
    """The microphone, looping every 30 s: 3 s of silence, then a request for a long reply."""
    request = speak("Tell me a long story.", rate=48000)
    pcm = np.concatenate([np.zeros(3 * 48000, np.int16), request])
    pcm = np.concatenate([pcm, np.zeros(30 * 48000 - len(pcm), np.int16)])
    path = tmp_path / "story.wav"
    path.write_bytes(wav_bytes(pcm, rate=48000))
    return path


BOT_LINES_JS = """() => [...document.querySelectorAll("#transcript li[data-role=bot]")]
  .map((li) => li.textContent.trim())"""


async def test_vllm_killed_mid_reply_is_apologised_for_and_the_next_turn_answered(
    product, story_mic, tmp_path
):
    """vLLM is killed while it streams the story: the bot says it needs a moment, the page says
    the LLM is reconnecting until the supervisor has it back, and the user's next request gets
    its story."""
    from bots.llm import LLM_FAILED_APOLOGY

    llm = product.http("llm")
    async with chromium(story_mic, tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(f"{product.bot_url}/")
        await page.click("#connect")
        await page.wait_for_selector("#status[data-state=connected]", timeout=60_000)
        assert await poll(lambda: has_event(page, "user-started-speaking"), within=60)
        # The story's request streaming (the greeting's warm-up requests are done by now).
        assert await poll(lambda: metric(llm, "vllm:num_requests_running") > 0, every=0.01)
        kill_service(product, "llm")

        async def bot_lines() -> list[str]:
            return await page.evaluate(BOT_LINES_JS)

        assert await poll(lambda: said(bot_lines, LLM_FAILED_APOLOGY), within=60), "no apology"
        # Said after what the reply had spoken before it failed, not in the middle of it.
        (cut,) = [line for line in await bot_lines() if LLM_FAILED_APOLOGY in line]
        assert cut.endswith(LLM_FAILED_APOLOGY), cut
        await shows_reconnecting(page, "LLM")
        await page.wait_for_selector("#status[data-state=connected]", timeout=240_000)

        async def story_after_the_apology() -> bool:
            lines = await bot_lines()
            last_apology = max(i for i, line in enumerate(lines) if LLM_FAILED_APOLOGY in line)
            return any("upon a time" in line for line in lines[last_apology + 1 :])

        # The microphone asks again every 30 s.
        assert await poll(story_after_the_apology, within=120), await bot_lines()


async def said(bot_lines, text: str) -> bool:
    return any(text in line for line in await bot_lines())


async def test_the_tts_restarting_is_shown_and_the_lost_greeting_owned_up_to(product, tmp_path):
    """The TTS process is killed as the user connects, so the greeting cannot be spoken: the
    page says the TTS is reconnecting, and once the supervisor has it back the bot says it was
    cut off, in audio that reaches the browser."""
    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(wav_bytes(np.zeros(5 * 48000, np.int16), rate=48000))
    kill_service(product, "tts")
    async with chromium(quiet, tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(f"{product.bot_url}/")
        await page.click("#connect")
        await shows_reconnecting(page, "TTS", within_ms=60_000)
        await the_cut_off_notice_is_heard_once_the_tts_is_back(page)


REPLY_PARTS_JS = """() => {
  const reply = document.querySelector("#transcript li[data-role=user] ~ li[data-role=bot]");
  return reply ? [...reply.children].map((s) => [s.textContent.trim(), s.className]) : [];
}"""


async def test_the_tts_killed_mid_reply_is_said_once_it_is_back(product, story_mic, tmp_path):
    """The TTS process is killed while it synthesises the story: the page says the TTS is
    reconnecting until the supervisor has it back, what was lost is not shown as spoken, and the
    bot says its voice cut out, in audio that reaches the browser."""
    tts = product.http("tts")
    async with chromium(story_mic, tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(f"{product.bot_url}/")
        await page.click("#connect")
        await page.wait_for_selector("#status[data-state=connected]", timeout=60_000)
        # The story's second segment on its way: the first one is being heard.
        assert await poll(lambda: len_at_least(page.evaluate(REPLY_PARTS_JS), 2), within=60)
        assert await poll(lambda: metric(tts, "tts_active_utterances") > 0, every=0.01)
        kill_service(product, "tts")
        await shows_reconnecting(page, "TTS")
        await the_cut_off_notice_is_heard_once_the_tts_is_back(page)
        parts = await page.evaluate(REPLY_PARTS_JS)
    # The story began to be heard; the part the TTS took with it is shown as not spoken.
    assert parts[0] == ["Once upon a time,", ""], parts
    assert ["unspoken lost"] == sorted({cls for _, cls in parts} - {""}), parts


async def len_at_least(items, n: int) -> bool:
    return len(await items) >= n


def kill_service(product, name: str) -> None:
    """SIGKILLs a model service's process, as a crash would; the supervisor restarts it."""
    state = json.loads((product.run_dir / "state.json").read_text())
    os.kill(state["services"][name]["pid"], signal.SIGKILL)


async def shows_reconnecting(page, service: str, within_ms: int = 30_000) -> None:
    await page.wait_for_selector("#status[data-state=reconnecting]", timeout=within_ms)
    assert service in await page.inner_text("#status")


async def the_cut_off_notice_is_heard_once_the_tts_is_back(page) -> None:
    """While the TTS is still down: once the supervisor has it back (about 20 s on two cores),
    the page shows the notice and its audio reaches the browser."""
    from bots.tts import CUT_OFF_NOTICE

    silent = await inbound_audio(page)
    await page.wait_for_selector("#status[data-state=connected]", timeout=240_000)
    notice = page.locator("#transcript li[data-role=bot]", has_text=CUT_OFF_NOTICE)
    await notice.wait_for(timeout=60_000)
    assert await poll(lambda: audio_grew(page, silent), within=60), "the notice was not heard"
