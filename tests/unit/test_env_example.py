"""`.env.example` is the settings' reference: each one appears once, so a copy edited into .env
cannot set a port in one place and have a later line silently undo it."""

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_listed_once():
    lines = (ROOT / ".env.example").read_text().splitlines()
    keys = [line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")]
    assert keys, "no settings found"
    assert [k for k, n in Counter(keys).items() if n > 1] == []
