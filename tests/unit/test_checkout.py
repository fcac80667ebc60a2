"""A clone works on any machine: nothing tracked points at, or names, one build machine's files."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Where this project's build and CI machines keep their own things (the checkout, root's home,
# local wheel folders and package mirrors, test temporaries), a macOS home, any /home but the
# container's, and any file:// URL. A container path (/opt/nemotron-voice, /home/nemotron) or a
# Debian one (/usr/bin/chromium) is the same everywhere and allowed.
MACHINE_PATH = re.compile(
    r"(?<![\w.~$-])/(?:work|root|Users|tmp/pytest-of-[\w-]+)/"
    r"|(?<![\w.~$-])/opt/(?:wheels|pypi[\w-]*)\b"
    r"|(?<![\w.~$-])/home/(?!nemotron\b)\w"
    r"|file:///"
)


def tracked() -> list[tuple[str, str]]:
    """(mode, path) of every file git tracks here."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-s", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"not a git checkout ({e}): nothing to check")
    entries = []
    for record in out.decode().split("\0"):
        if record:
            meta, path = record.split("\t", 1)
            entries.append((meta.split()[0], path))
    return entries


def test_no_tracked_symlink_leaves_the_repo():
    """A link into a developer's folders (as .venv-vllm once was) breaks every other clone."""
    outside = []
    for mode, path in tracked():
        if mode != "120000":
            continue
        target = os.readlink(ROOT / path) if (ROOT / path).is_symlink() else ""
        resolved = (ROOT / path).parent.joinpath(target).resolve()
        if not target or os.path.isabs(target) or not resolved.is_relative_to(ROOT):
            outside.append(f"{path} -> {target or '(not a link in this checkout)'}")
    assert not outside, f"tracked symlinks that leave the repo: {outside}"


def test_no_tracked_file_names_a_build_machine_path():
    found = []
    for mode, path in tracked():
        file = ROOT / path
        if mode == "120000" or not file.is_file() or file == Path(__file__):
            continue  # this file's examples name such paths on purpose
        data = file.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary: model weights, images
        for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path}:{number}: {line.strip()[:120]}")
    assert not found, "tracked files name one machine's paths:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("line", "machine_specific"),
    [
        ('url = "/opt/wheels"', True),
        ('source = { registry = "/opt/wheels" }', True),
        ("lrwxrwxrwx .venv-vllm -> /work/llm-wt/.venv-vllm", True),
        ("see /root/.cache/uv", True),
        ("/home/alice/models/asr.nemo", True),
        ("file:///opt/pypi/simple", True),
        ("HOME=/home/nemotron", False),
        ("WORKDIR /opt/nemotron-voice", False),
        ('CHROMIUM = "/usr/bin/chromium"', False),
        ("https://example.com/work/x and ~/.cache/huggingface", False),
        ("$HOME/work/thing", False),
    ],
)
def test_the_path_rule_tells_machine_paths_from_portable_ones(line, machine_specific):
    assert bool(MACHINE_PATH.search(line)) == machine_specific
