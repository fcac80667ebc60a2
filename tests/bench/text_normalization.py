"""NeMo's grammar and the pure-Python fallback side by side on the sentence table
(tests/text_normalization_cases.py): what each says, how often they agree, how often each says
it as a person would, and the time per sentence on this machine.

    uv run python tests/bench/text_normalization.py [--out docs/benchmarks/text-normalization.md]

Where NeMo's grammar cannot load (aarch64), only the fallback's columns are filled.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.tts.normalize import TextNormalizer, grammar_import_error  # noqa: E402
from tests.text_normalization_cases import CASES, spoken_key  # noqa: E402


async def timed(normalizer: TextNormalizer, text: str, language: str) -> tuple[str, float]:
    started = time.perf_counter()
    said = await normalizer.normalize(text, language)
    return said, (time.perf_counter() - started) * 1000


async def measure() -> str:
    languages = sorted({case.language for case in CASES})
    fallback = TextNormalizer(languages, choice="fallback")
    nemo_error = grammar_import_error()
    nemo = None if nemo_error else TextNormalizer(languages, choice="nemo")
    for language in languages if nemo else []:
        print(f"loading NeMo's grammar for {language} ...", file=sys.stderr)
        await nemo.warm(language)
    rows, stats = [], {language: {"n": 0, "agree": 0, "f": 0, "g": 0} for language in languages}
    times = {(name, language): [] for name in ("fallback", "nemo") for language in languages}
    for case in CASES:
        by_fallback, ms = await timed(fallback, case.written, case.language)
        times["fallback", case.language].append(ms)
        by_nemo = ""
        if nemo:
            by_nemo, ms = await timed(nemo, case.written, case.language)
            times["nemo", case.language].append(ms)
        s = stats[case.language]
        s["n"] += 1
        s["f"] += spoken_key(by_fallback) == spoken_key(case.spoken)
        s["g"] += bool(nemo) and spoken_key(by_nemo) == spoken_key(case.spoken)
        agree = bool(nemo) and spoken_key(by_nemo) == spoken_key(by_fallback)
        s["agree"] += agree
        rows.append(
            f"| {case.language} | {case.written} | {by_nemo or '-'} | {by_fallback} | "
            f"{'yes' if agree else 'no' if nemo else '-'} |"
        )
    out = [
        f"# Text normalisation: NeMo's grammar and the fallback ({platform.machine()})",
        "",
        f"`python tests/bench/text_normalization.py`, {len(CASES)} sentences"
        f" ({', '.join(languages)}); NeMo's grammar: {nemo_error or 'loaded'}."
        " Compared as heard: case, punctuation, hyphens and spaces ignored.",
        "",
        "| language | sentences | fallback and NeMo agree | fallback as a person says it |"
        " NeMo as a person says it |",
        "|---|---|---|---|---|",
    ]
    for language, s in stats.items():
        out.append(
            f"| {language} | {s['n']} | {s['agree'] if nemo else '-'} | {s['f']} |"
            f" {s['g'] if nemo else '-'} |"
        )
    total = {k: sum(s[k] for s in stats.values()) for k in ("n", "agree", "f", "g")}
    out.append(
        f"| all | {total['n']} | {total['agree'] if nemo else '-'}"
        f" ({100 * total['agree'] / total['n']:.0f} %) | {total['f']} | {total['g']} |"
    )
    out += ["", "Time per sentence, median (max), on this machine's CPU:", ""]
    for (name, language), values in times.items():
        if values:
            median, most = statistics.median(values), max(values)
            out.append(f"- {name}, {language}: {median:.2f} ms ({most:.1f} ms)")
    out += [
        "",
        "| language | written | NeMo's grammar | fallback | agree |",
        "|---|---|---|---|---|",
    ]
    fallback.close()
    if nemo:
        nemo.close()
    return "\n".join(out + rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    report = asyncio.run(measure())
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
