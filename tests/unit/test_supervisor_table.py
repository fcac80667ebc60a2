"""The service table per profile, and the restart backoff."""

from pathlib import Path

import pytest

from services.supervisor.process import Backoff
from services.supervisor.table import build_table
from settings import TINY_ASR

PY = "python3"
MODELS = Path("/models")


def table(profile, enabled=("asr", "tts", "llm"), **env):
    return {s.name: s for s in build_table(profile, enabled, python=PY, env=env, models=MODELS)}


@pytest.mark.parametrize("profile", ["auto", "rtx5090", "dgx-spark", "generic"])
def test_gpu_profiles_serve_the_real_models_on_cuda(profile):
    t = table(profile)
    host = ("--host", "127.0.0.1")
    assert t["asr"].argv == (PY, "-m", "services.asr", *host, "--port", "8080", "--device", "cuda")
    assert t["tts"].argv == (PY, "-m", "services.tts", *host, "--port", "8001", "--device", "cuda")
    llm = (PY, "-m", "services.llm", "--host", "127.0.0.1", "--port", "8000", "--profile", profile)
    assert t["llm"].argv == llm
    assert t["llm"].dry_run == (*llm, "--dry-run")
    assert not t["asr"].prepare and not t["tts"].prepare


def test_cpu_test_serves_the_tiny_models_and_builds_them_first():
    """The committed trained ASR; the tiny TTS built first, into a folder named after its
    builder's source (a changed builder builds anew), with the released checkpoint's voices."""
    t = table("cpu-test")
    asr, tts = t["asr"], t["tts"]
    assert asr.argv[-4:] == ("--device", "cpu", "--model", str(TINY_ASR))
    assert TINY_ASR.is_file() and not asr.prepare
    folder = tts.creates.parent
    assert folder.parent == MODELS and folder.name.startswith("tiny_tts-")
    assert tts.argv[-6:] == (
        *("--device", "cpu", "--model", f"{folder}/tiny_magpie.nemo"),
        *("--codec", f"{folder}/tiny_codec.nemo"),
    )
    assert tts.prepare == (
        *(PY, "-m", "tiny_models.tts", str(folder)),
        *("--voices", "Aria,Jason,John,Leo,Sofia"),
    )
    assert t["llm"].argv[-2:] == ("--profile", "cpu-test")


def test_the_llm_starts_after_the_services_that_run():
    assert table("rtx5090")["llm"].after == ("asr", "tts")
    assert table("rtx5090", ("tts", "llm"))["llm"].after == ("tts",)
    assert table("rtx5090", ("llm",))["llm"].after == ()
    assert table("rtx5090")["asr"].after == table("rtx5090")["tts"].after == ()


def test_start_order_and_left_out_services():
    assert [s.name for s in build_table("generic", ["llm", "asr"], python=PY, env={})] == [
        "asr",
        "llm",
    ]
    assert build_table("generic", [], python=PY, env={}) == []


def test_ports_and_host_come_from_the_settings():
    t = {
        s.name: s
        for s in build_table(
            "generic", host="0.0.0.0", python=PY, env={"ASR_PORT": "9080", "LLM_PORT": "9000"}
        )
    }
    assert t["asr"].argv[3:7] == ("--host", "0.0.0.0", "--port", "9080")
    assert t["asr"].health_url == "http://127.0.0.1:9080/health"
    assert t["tts"].port == 8001 and t["llm"].port == 9000


@pytest.mark.parametrize("value", ["http", "0", "70000", "-1"])
def test_a_bad_port_is_a_clear_error(value):
    with pytest.raises(ValueError, match="ASR_PORT must be a port number"):
        table("generic", ASR_PORT=value)


def test_unknown_profile_or_service_is_an_error():
    with pytest.raises(ValueError, match="unknown profile 'rtx9000'"):
        table("rtx9000")
    with pytest.raises(ValueError, match="unknown services"):
        table("generic", ("asr", "vision"))


def test_backoff_doubles_up_to_the_cap_and_starts_over_after_a_long_healthy_run():
    backoff = Backoff(base=1, cap=30, reset_after=60)
    assert [backoff.next(healthy_for=5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next(healthy_for=60) == 1
    assert backoff.next(healthy_for=0) == 2
