"""The layout rules of docs/architecture.md: bots/ never imports torch, NeMo or services/;
services/ never imports Pipecat; protocol/ imports neither side."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("bots", {"torch", "nemo", "torchaudio", "services"}),
        ("services", {"pipecat"}),
        ("protocol", {"services", "bots", "pipecat", "torch", "nemo"}),
    ],
)
def test_forbidden_imports(folder, forbidden):
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imported_top_modules(p) & forbidden)
        for p in (ROOT / folder).rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}
