"""Asks each service whether it answers: `nemotron.sh status` prints the answers, and
`nemotron.sh start` waits on them with a progress line."""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from launcher.models import recorded
from protocol import health
from services.supervisor.state import read_state
from settings import ADDRESSES, port

# The bot has no /health: its page answering is what counts.
HEALTH_PATHS = {"bot": "/"}
DETAILS = ("model", "revision", "sessions", "error")


def probe(name: str, env: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """("ready", details) on 200; the body's status ("loading", "failed", "degraded") on 503;
    or "down"."""
    url = f"http://127.0.0.1:{port(name, env)}{HEALTH_PATHS.get(name, health.PATH)}"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return "ready", _details(health.parse_health(resp.read()))
    except urllib.error.HTTPError as e:
        if name == "bot" and e.code < 500:
            return "ready", {}
        report = health.parse_health(e.read())
        return (report.status if report else f"http {e.code}"), _details(report)
    except (OSError, http.client.HTTPException):
        return "down", {}


def _details(report: health.Health | None) -> dict[str, Any]:
    return {k: getattr(report, k) for k in DETAILS if report and getattr(report, k) is not None}


def _served_model(env: Mapping[str, str]) -> str | None:
    """vLLM's /health is empty; /v1/models names what it serves."""
    url = f"http://127.0.0.1:{port('llm', env)}/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return ", ".join(m["id"] for m in json.loads(resp.read())["data"])
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        return None


def _fetched_commit(service: str, run_dir: Path) -> str | None:
    """vLLM reports no revision: the commit `fetch-models` recorded for the service's model."""
    return next((r.get("commit") for r in recorded(run_dir) if r.get("service") == service), None)


def _state(name: str, env: Mapping[str, str], run_dir: Path) -> tuple[str, dict[str, Any]]:
    """The probe, or what the supervisor says of a service that does not answer yet."""
    status, body = probe(name, env)
    supervised = ((read_state(run_dir) or {}).get("services") or {}).get(name) or {}
    if status == "down" and supervised.get("status") not in (None, "healthy"):
        status = supervised["status"]
    return status, {**body, **{k: supervised[k] for k in ("pid", "restarts") if k in supervised}}


def status_lines(names: Iterable[str], env: Mapping[str, str], run_dir: Path) -> list[str]:
    lines = []
    for name in names:
        status, body = _state(name, env, run_dir)
        if name == "llm" and status == "ready":
            body["model"] = _served_model(env)
            body["revision"] = _fetched_commit("llm", run_dir)
        details = [f"{k} {body[k]}" for k in (*DETAILS, "pid", "restarts") if body.get(k)]
        address = ADDRESSES[name][1].format(port=port(name, env))
        lines.append(f"{name:<4} {status:<10} {address:<38} {', '.join(details)}".rstrip())
    return lines


def wait(
    names: list[str],
    env: Mapping[str, str],
    run_dir: Path,
    gone: Callable[[], str | None],
    timeout: float,
    out: TextIO = sys.stderr,
) -> int:
    """Until every service is ready: 0. When `gone()` names a reason (what runs them ended), or
    after `timeout` seconds (0: no limit): 1. A terminal gets one line redrawn in place; a log
    gets a line whenever something changes."""
    start = time.monotonic()
    shown: dict[str, str] = {}
    while True:
        states = {name: _state(name, env, run_dir)[0] for name in names}
        elapsed = time.monotonic() - start
        line = "  ".join(f"{n}: {s}" for n, s in states.items())
        line = f"waiting for the services ({int(elapsed) // 60}m{int(elapsed) % 60:02d}s)  {line}"
        if out.isatty():
            out.write(f"\r\x1b[K{line}")
        elif states != shown:
            out.write(line + "\n")
        out.flush()
        shown = states
        if all(s == "ready" for s in states.values()):
            out.write("\n" if out.isatty() else "")
            return 0
        reason = gone()
        if reason or (timeout and elapsed > timeout):
            reason = reason or f"not every service was healthy after {timeout:g} s"
            out.write(("\n" if out.isatty() else "") + reason + "\n")
            return 1
        time.sleep(1)
