"""Ports and processes, for the tests that start real services."""

from __future__ import annotations

import random
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


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


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0
