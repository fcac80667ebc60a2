"""Ports and processes, for the tests that start real services."""

from __future__ import annotations

import random
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

from protocol.health import PATH as HEALTH_PATH
from protocol.health import Health

H = TypeVar("H", bound=Health)


def _ephemeral_ports() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


_handed_out: set[int] = set()


def free_port() -> int:
    """A free port outside the kernel's ephemeral range: a service binds it only after a start of
    minutes, and in between other processes (vLLM opens many sockets) take ephemeral ports."""
    ephemeral = _ephemeral_ports()
    while True:
        port = random.randrange(10000, 32000)
        if port in ephemeral or port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of a service's Prometheus samples of `name` that carry these labels."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def wait_healthy(port: int, proc: subprocess.Popen, answer: type[H], timeout: float) -> H:
    """Polls a service started as `proc` until its /health answers 200: the body, as `answer`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=2) as resp:
                return answer.from_json(resp.read())
        except OSError:
            time.sleep(0.5)
    raise AssertionError("server never became healthy")


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0
