"""The bot's side of the LLM: its settings from the environment, and its tools."""

import asyncio
from types import SimpleNamespace

import pytest

from bots.llm import DEFAULT_URL, VOICE_SYSTEM_PROMPT, LLMConfig, create_context
from bots.tools import CALCULATE, GET_CURRENT_TIME, MAX_EXPONENT, current_time, evaluate


def test_config_defaults_to_the_local_vllm_and_the_voice_prompt(monkeypatch):
    for name in ("LLM_URL", "LLM_SERVED_MODEL_NAME", "NEMOTRON_API_KEY", "LLM_SYSTEM_PROMPT"):
        monkeypatch.delenv(name, raising=False)
    assert LLMConfig.from_env() == LLMConfig(
        url=DEFAULT_URL, model="nemotron-3-nano", api_key=None, system_prompt=VOICE_SYSTEM_PROMPT
    )


def test_config_reads_the_environment(monkeypatch):
    monkeypatch.setenv("LLM_URL", "http://gpu-box:8000/v1")
    monkeypatch.setenv("LLM_SERVED_MODEL_NAME", "brain")
    monkeypatch.setenv("NEMOTRON_API_KEY", "s3cret")
    monkeypatch.setenv("LLM_SYSTEM_PROMPT", "Be a pirate.")
    expected = LLMConfig("http://gpu-box:8000/v1", "brain", "s3cret", "Be a pirate.")
    assert LLMConfig.from_env() == expected


def test_the_context_offers_the_tools():
    names = [tool.name for tool in create_context().tools.standard_tools]
    assert names == ["get_current_time", "calculate"]


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("12 * 7", 84),
        ("(3 + 4) ** 2", 49),
        ("7 / 2", 3.5),
        ("10 / 4 * 2", 5),
        ("-3 + 1", -2),
        ("17 // 5 + 17 % 5", 5),
        ("0.1 + 0.2", 0.3),
        ("2 ** 0.5", 1.4142135624),
    ],
)
def test_the_calculator_does_arithmetic(expression, value):
    result = evaluate(expression)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize(
    "expression",
    [
        *("__import__('os').system('true')", "x + 1", "print(1)", "'a' * 3", "True + 1"),
        *("", "1 +", "(-8) ** 0.5", f"2 ** {MAX_EXPONENT + 1}"),
    ],
)
def test_the_calculator_runs_nothing_but_arithmetic(expression):
    with pytest.raises(ValueError):
        evaluate(expression)


def call(schema, **arguments):
    """A tool's handler as Pipecat calls it; returns what it reports."""
    results = []

    async def result_callback(result, **_):
        results.append(result)

    params = SimpleNamespace(arguments=arguments, result_callback=result_callback)
    asyncio.run(schema.handler(params))
    return results


def test_the_calculate_tool_reports_results_and_errors():
    assert call(CALCULATE, expression="12 * 7") == [{"expression": "12 * 7", "result": 84}]
    assert call(CALCULATE, expression="1 / 0") == [
        {"expression": "1 / 0", "error": "division by zero"}
    ]
    [refused] = call(CALCULATE, expression="open('/etc/passwd')")
    assert "not plain arithmetic" in refused["error"]


def test_the_time_tool_says_the_date_and_time_in_a_zone():
    now = current_time("UTC")
    assert set(now) == {"date", "time", "timezone"} and now["timezone"] == "UTC"
    assert now["time"].endswith(("AM", "PM")) and now["date"].count(",") == 2
    [paris] = call(GET_CURRENT_TIME, timezone="Europe/Paris")
    assert paris["timezone"] == "Europe/Paris"
    assert call(GET_CURRENT_TIME, timezone="Mars/Olympus") == [
        {"error": "unknown time zone 'Mars/Olympus'"}
    ]
    [local] = call(GET_CURRENT_TIME)
    assert local["date"] and local["time"]
