"""The CUDA graphs choice: kept only where the warm-up decodes the same with them, and never on
the CPU. The decoding is injected, so each outcome can be forced without a GPU."""

import pytest

from services.asr import __main__ as cli
from services.asr.model import CUDA_GRAPHS, choose_cuda_graphs


def decoder(with_graphs, without=("hello", "")):
    """A decode(graphs) that records its calls; `with_graphs` is a result or an exception."""
    calls = []

    async def decode(graphs: bool) -> list[str]:
        calls.append(graphs)
        if not graphs:
            return list(without)
        if isinstance(with_graphs, Exception):
            raise with_graphs
        return list(with_graphs)

    return decode, calls


async def test_auto_keeps_graphs_that_decode_the_same():
    decode, calls = decoder(("hello", ""))
    assert await choose_cuda_graphs("auto", "cuda", decode) is True
    assert calls == [False, True]


async def test_auto_drops_graphs_that_change_the_text():
    decode, _ = decoder(("hellp", ""))
    assert await choose_cuda_graphs("auto", "cuda", decode) is False


async def test_auto_drops_graphs_that_raise():
    decode, _ = decoder(RuntimeError("transcription failed: capture error"))
    assert await choose_cuda_graphs("auto", "cuda", decode) is False


async def test_a_failure_without_graphs_is_not_hidden():
    async def decode(graphs: bool) -> list[str]:
        raise RuntimeError("the model itself is broken")

    with pytest.raises(RuntimeError, match="broken"):
        await choose_cuda_graphs("auto", "cuda", decode)


@pytest.mark.parametrize(("setting", "expected"), [("on", True), ("off", False)])
async def test_on_and_off_are_taken_as_set(setting, expected):
    decode, calls = decoder(RuntimeError("not called"))
    assert await choose_cuda_graphs(setting, "cuda", decode) is expected
    assert calls == []


@pytest.mark.parametrize("setting", CUDA_GRAPHS)
async def test_never_on_the_cpu(setting):
    decode, calls = decoder(("hello", ""))
    assert await choose_cuda_graphs(setting, "cpu", decode) is False
    assert calls == []


async def test_unknown_setting_is_refused():
    decode, _ = decoder(("hello", ""))
    with pytest.raises(ValueError, match="cuda_graphs"):
        await choose_cuda_graphs("sometimes", "cuda", decode)


def test_command_line_and_environment(monkeypatch):
    assert cli.CUDA_GRAPHS == CUDA_GRAPHS
    monkeypatch.delenv("ASR_CUDA_GRAPHS", raising=False)
    assert cli.parse_args([]).cuda_graphs == "auto"
    monkeypatch.setenv("ASR_CUDA_GRAPHS", "off")
    assert cli.parse_args([]).cuda_graphs == "off"
    assert cli.parse_args(["--cuda-graphs", "on"]).cuda_graphs == "on"
    with pytest.raises(SystemExit) as exit_:
        cli.parse_args(["--cuda-graphs", "maybe"])
    assert exit_.value.code == 2
    monkeypatch.setenv("ASR_MODEL", "x.nemo")
    assert cli.build(cli.parse_args(["--device", "cpu"])).settings.cuda_graphs == "off"
