"""The vLLM launch profiles: each one's exact command, the overrides, the CLI (which picks the
profile with settings.detect_profile, tested in test_settings.py)."""

import json
import re
import subprocess
import sys

import pytest
from tokenizers import Tokenizer

from services.llm.profiles import CHECKPOINTS, ProfileError, build_command, resolve
from settings import ROOT
from tests.llm_helpers import clean_env

# What every profile passes, whatever the machine.
COMMON = [
    "--served-model-name",
    "nemotron-3-nano",
    "--host",
    "127.0.0.1",
    "--port",
    "8000",
    "--reasoning-parser",
    "nemotron_v3",
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "qwen3_coder",
]


# What the model's vLLM recipe adds on a GPU, each with its reason in profiles.py.
RECIPE = ["--mamba-ssm-cache-dtype", "float32", "--trust-remote-code", "--async-scheduling"]


def command(profile, precision=None, env=None, **cli):
    return build_command(resolve(profile, precision, env=env or {}, **cli))


# The FP8 checkpoint's experts as the model's vLLM recipe runs them (FlashInfer's CUTLASS kernels,
# the recipe's VLLM_FLASHINFER_MOE_BACKEND=throughput), by the flag that replaced its variables.
FP8_RECIPE_MOE = ["--moe-backend", "flashinfer_cutlass"]


def test_rtx5090_serves_nvfp4_with_flashinfer_cutlass_and_an_fp8_cache():
    cmd = command("rtx5090")
    assert cmd.argv == [
        "vllm",
        "serve",
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4",
        *COMMON,
        "--enable-prefix-caching",
        *("--max-model-len", "32768"),
        *("--gpu-memory-utilization", "0.8"),
        *("--max-num-seqs", "8"),
        *("--kv-cache-dtype", "fp8"),
        *RECIPE,
        *("--moe-backend", "flashinfer_cutlass"),
    ]
    assert cmd.env == {}


@pytest.mark.parametrize(
    ("precision", "model", "utilization", "kv_cache", "moe"),
    [
        (None, CHECKPOINTS["nvfp4"], "0.35", ["--kv-cache-dtype", "fp8"], []),
        ("fp8", CHECKPOINTS["fp8"], "0.45", ["--kv-cache-dtype", "fp8"], FP8_RECIPE_MOE),
        ("bf16", CHECKPOINTS["bf16"], "0.65", [], []),
    ],
)
def test_dgx_spark_serves_nvfp4_by_default_and_fp8_or_bf16_on_request(
    precision, model, utilization, kv_cache, moe
):
    assert command("dgx-spark", precision).argv == [
        "vllm",
        "serve",
        model,
        *COMMON,
        "--enable-prefix-caching",
        *("--max-model-len", "131072"),
        *("--gpu-memory-utilization", utilization),
        *("--max-num-seqs", "16"),
        *kv_cache,
        *RECIPE,
        *moe,
    ]


def test_generic_serves_fp8():
    assert command("generic").argv == [
        "vllm",
        "serve",
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-FP8",
        *COMMON,
        "--enable-prefix-caching",
        *("--max-model-len", "131072"),
        *("--gpu-memory-utilization", "0.85"),
        *("--max-num-seqs", "32"),
        *("--kv-cache-dtype", "fp8"),
        *RECIPE,
        *FP8_RECIPE_MOE,
    ]
    assert command("generic").env == {}
    assert "--moe-backend" not in command("generic", "bf16").argv


def test_the_recipes_moe_choice_is_one_the_shipped_vllm_reads():
    """The recipe's VLLM_USE_FLASHINFER_MOE_FP8 and VLLM_FLASHINFER_MOE_BACKEND are gone from
    vLLM's envs.py (it warns of them and ignores them); --moe-backend takes flashinfer_cutlass.
    .venv-vllm holds the CPU build of the image's release line."""
    vllm = ROOT / ".venv-vllm" / "lib" / "python3.11" / "site-packages" / "vllm"
    if not (vllm / "envs.py").is_file():
        pytest.skip(f"no vLLM at {vllm}")
    envs, kernel = (vllm / "envs.py").read_text(), (vllm / "config" / "kernel.py").read_text()
    for variable in ("VLLM_USE_FLASHINFER_MOE_FP8", "VLLM_FLASHINFER_MOE_BACKEND"):
        assert f'"{variable}"' not in envs
    backend = re.search(r"MoEBackend = Literal\[(.*?)\]", kernel, re.S).group(1)
    assert f'"{FP8_RECIPE_MOE[1]}"' in backend


def test_cpu_test_runs_the_cpu_builds_module_on_the_test_model():
    cmd = command("cpu-test")
    assert cmd.argv == [
        *("taskset", "-c", "0"),
        str(ROOT / ".venv-vllm" / "bin" / "python"),
        *("-m", "vllm.entrypoints.openai.api_server"),
        *("--model", str(ROOT / "tiny_models" / "llm")),
        *COMMON,
        "--no-enable-prefix-caching",
        *("--max-model-len", "32768"),
        "--enforce-eager",
    ]
    assert cmd.env == {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "0",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    }


def test_cpu_tests_model_is_nemotron_3_nanos_class_with_its_special_tokens():
    model = ROOT / "tiny_models" / "llm"
    config = json.loads((model / "config.json").read_text())
    assert config["architectures"] == ["NemotronHForCausalLM"]
    # Mamba-2, attention and dense MLP blocks: all but the MoE blocks vLLM's CPU build refuses.
    assert set(config["layers_block_type"]) == {"linear_attention", "full_attention", "mlp"}
    # The template's markers are one token each, as vLLM's parsers expect.
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    template = (model / "chat_template.jinja").read_text()
    markers = set(re.findall(r"<\|im_\w+\|>|</?(?:think|tool_call|tool_response)>", template))
    assert len(markers) == 8
    assert all(len(tokenizer.encode(m).ids) == 1 for m in markers)


def test_cpu_test_takes_other_cores_and_another_python_from_the_environment():
    env = {"LLM_CPU_CORES": "0-3", "LLM_VLLM_PYTHON": "/opt/vllm/bin/python"}
    cmd = command("cpu-test", env=env)
    assert cmd.argv[:4] == ["taskset", "-c", "0-3", "/opt/vllm/bin/python"]
    assert cmd.env["VLLM_CPU_OMP_THREADS_BIND"] == "0-3"
    # GPU profiles neither pin cores nor use that Python.
    assert command("generic", env=env).argv[:2] == ["vllm", "serve"]


def test_a_precision_the_profile_cannot_hold_is_refused():
    with pytest.raises(ProfileError, match="serves nvfp4, not 'fp8'"):
        command("rtx5090", "fp8")
    with pytest.raises(ProfileError, match="unknown profile"):
        command("laptop")


def test_every_value_can_be_overridden_from_the_environment():
    env = {
        "LLM_MODEL": "/models/nano",
        "LLM_HOST": "0.0.0.0",
        "LLM_PORT": "9000",
        "LLM_SERVED_MODEL_NAME": "brain",
        "LLM_MAX_MODEL_LEN": "8192",
        "LLM_GPU_MEMORY_UTILIZATION": "0.7",
        "LLM_MAX_NUM_SEQS": "4",
        "LLM_KV_CACHE_DTYPE": "auto",
        "LLM_MAMBA_SSM_CACHE_DTYPE": "bfloat16",
        "LLM_MOE_BACKEND": "marlin",
        "LLM_PREFIX_CACHING": "0",
        "LLM_EXTRA_ARGS": "--seed 7 --max-num-batched-tokens 2048",
        "NEMOTRON_API_KEY": "s3cret",
    }
    cmd = command("rtx5090", env=env)
    assert cmd.argv == [
        *("vllm", "serve", "/models/nano"),
        *("--served-model-name", "brain", "--host", "0.0.0.0", "--port", "9000"),
        *COMMON[6:],
        "--no-enable-prefix-caching",
        *("--max-model-len", "8192"),
        *("--gpu-memory-utilization", "0.7"),
        *("--max-num-seqs", "4"),
        *("--kv-cache-dtype", "auto"),
        *("--mamba-ssm-cache-dtype", "bfloat16"),
        *("--trust-remote-code", "--async-scheduling"),
        *("--moe-backend", "marlin"),
        *("--seed", "7", "--max-num-batched-tokens", "2048"),
    ]
    # The key reaches vLLM through its environment, never the printed command line.
    assert cmd.env == {"VLLM_API_KEY": "s3cret"}
    assert "s3cret" not in cmd.shell() and cmd.shell().startswith("VLLM_API_KEY=*** vllm serve")


def test_the_precision_and_the_command_line_override_the_environment():
    env = {"LLM_PRECISION": "bf16", "LLM_PORT": "9000", "LLM_MODEL": "/models/a"}
    argv = command("dgx-spark", env=env).argv
    assert argv[2] == "/models/a" and argv[argv.index("--gpu-memory-utilization") + 1] == "0.65"
    argv = command("dgx-spark", "fp8", env=env, port=8100, model="/models/b").argv
    assert argv[2] == "/models/b" and argv[argv.index("--port") + 1] == "8100"
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.45"


def test_a_bad_override_names_the_setting():
    with pytest.raises(ProfileError, match=r"LLM_PORT must be a port number.*'eighty'"):
        command("generic", env={"LLM_PORT": "eighty"})
    with pytest.raises(ProfileError, match="LLM_PREFIX_CACHING"):
        command("generic", env={"LLM_PREFIX_CACHING": "maybe"})


def run_cli(*args, path: str):
    """The CLI with `path` as its PATH, and no LLM_* settings from a developer's .env."""
    return subprocess.run(
        [sys.executable, "-m", "services.llm", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env() | {"PATH": path},
        timeout=60,
    )


def test_dry_run_prints_the_command_and_runs_nothing(tmp_path):
    # A `vllm` on the PATH that would leave a mark if it were run.
    marker = tmp_path / "ran"
    fake = tmp_path / "vllm"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(0o755)
    result = run_cli(
        *("--profile", "rtx5090", "--dry-run", "--port", "8123", "--", "--max-num-seqs", "2"),
        path=f"{tmp_path}:/usr/bin:/bin",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("vllm serve nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4 ")
    assert "--port 8123" in result.stdout and result.stdout.endswith("--max-num-seqs 2\n")
    assert not marker.exists()


def test_without_dry_run_the_printed_command_is_executed(tmp_path):
    # A stand-in `vllm` that echoes its arguments proves the exec path.
    fake = tmp_path / "vllm"
    fake.write_text('#!/bin/sh\necho "ran: $*"\n')
    fake.chmod(0o755)
    result = run_cli("--profile", "generic", path=f"{tmp_path}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    printed, ran = result.stdout.splitlines()
    assert ran == "ran: " + printed.removeprefix("vllm ")


def test_auto_without_a_gpu_says_what_to_do(tmp_path):
    result = run_cli("--dry-run", path=str(tmp_path))
    assert result.returncode == 2
    assert "no NVIDIA GPU found" in result.stderr and "--profile cpu-test" in result.stderr


def test_auto_reads_nvidia_smi(tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\necho "NVIDIA GB10, [N/A], 580.95.05"\n')
    fake.chmod(0o755)
    result = run_cli("--dry-run", path=f"{tmp_path}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert "NVIDIA GB10, memory [N/A], driver 580.95.05: profile dgx-spark" in result.stderr
    assert result.stdout.startswith("vllm serve nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4 ")
