"""The layout rules of docs/architecture.md: bots/ never imports torch, NeMo or services/;
services/ never imports Pipecat; protocol/ imports neither side; nothing the product runs imports
tests/."""

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


# What the product runs: cpu-test's tiny models are product code (tiny_models/), not tests'.
PRODUCT = ("services", "bots", "launcher", "tiny_models", "scripts", "settings.py")


@pytest.mark.parametrize("part", PRODUCT)
def test_the_product_never_imports_the_tests(part):
    files = [ROOT / part] if part.endswith(".py") else sorted((ROOT / part).rglob("*.py"))
    assert files
    offenders = [str(p.relative_to(ROOT)) for p in files if "tests" in _imported_top_modules(p)]
    assert offenders == []


def test_the_rule_sees_an_import_of_the_tests(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from tests.models.train_tiny_llm import SKY\nimport tests.audio\n")
    assert _imported_top_modules(sample) == {"tests"}
