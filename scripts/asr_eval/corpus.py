"""The utterances to score: a folder of audio files with a `.txt` transcript each, or a test set
from the Hugging Face hub, streamed once into such a folder in the cache and read from there."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from protocol.asr import SAMPLE_RATE

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
CACHE = Path(os.environ.get("NEMOTRON_EVAL_CACHE", Path.home() / ".cache/nemotron-voice/eval"))
FETCHED = "fetched.json"  # written once a folder holds what was fetched: {"count", "complete"}


class CorpusError(Exception):
    """What is wrong with the asked-for utterances, said so that the user can fix it."""


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    path: Path

    def pcm(self) -> np.ndarray:
        """The audio as the ASR takes it: int16, 16 kHz, mono."""
        try:
            audio, rate = soundfile.read(self.path, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as e:
            raise CorpusError(f"cannot read {self.path}: {e}") from e
        mono = audio.mean(axis=1)
        if rate != SAMPLE_RATE:
            mono = soxr.resample(mono, rate, SAMPLE_RATE)
        return (np.clip(mono, -1.0, 1.0) * 32767).astype(np.int16)

    @property
    def seconds(self) -> float:
        return soundfile.info(self.path).duration


@dataclass(frozen=True)
class Dataset:
    """A test set on the Hugging Face hub: where it is, and which field holds the transcript."""

    name: str
    repo: str
    config: str
    split: str
    text_field: str
    language: str | None = None  # the locale the ASR session is asked for; None: its default


LIBRISPEECH = {
    "librispeech-clean": Dataset(
        "librispeech-clean", "openslr/librispeech_asr", "clean", "test", "text"
    ),
    "librispeech-other": Dataset(
        "librispeech-other", "openslr/librispeech_asr", "other", "test", "text"
    ),
}


def parse_dataset(spec: str) -> list[Dataset] | Path:
    """`librispeech-clean`, `librispeech-other`, `fleurs:de-DE,fr-FR` (one set per locale, the
    locale passed to the session), or the path of a folder."""
    if spec in LIBRISPEECH:
        return [LIBRISPEECH[spec]]
    if spec.startswith("fleurs:"):
        locales = [loc.strip() for loc in spec.removeprefix("fleurs:").split(",") if loc.strip()]
        if not locales:
            raise CorpusError("fleurs: needs one or more locales, e.g. fleurs:de-DE,fr-FR")
        return [fleurs(loc) for loc in locales]
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    known = ", ".join([*LIBRISPEECH, "fleurs:LOCALE[,LOCALE...]"])
    raise CorpusError(f"--dataset {spec!r} is neither a folder nor one of {known}")


def fleurs(locale: str) -> Dataset:
    """FLEURS' test split for a locale such as de-DE (FLEURS names it de_de)."""
    return Dataset(
        f"fleurs-{locale}",
        "google/fleurs",
        locale.lower().replace("-", "_"),
        "test",
        "raw_transcription",
        language=locale,
    )


def read_folder(folder: Path, limit: int | None = None) -> list[Utterance]:
    """Every audio file under `folder` (sorted by path), with the `.txt` of the same name."""
    audio = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not audio:
        raise CorpusError(f"{folder} has no audio files ({', '.join(AUDIO_SUFFIXES)})")
    missing = [p for p in audio if not p.with_suffix(".txt").is_file()]
    if missing:
        raise CorpusError(
            f"{len(missing)} audio file(s) in {folder} have no transcript beside them, such as "
            f"{missing[0]} (expected {missing[0].with_suffix('.txt').name})"
        )
    utterances = [
        Utterance(str(p.relative_to(folder).with_suffix("")), _read_text(p.with_suffix(".txt")), p)
        for p in audio[:limit]
    ]
    return utterances


def _read_text(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split())


def fetch(dataset: Dataset, limit: int | None, cache: Path = CACHE) -> Path:
    """The folder holding the first `limit` utterances of `dataset` (all of them for None),
    streamed from the hub into the cache unless an earlier run already put them there."""
    folder = cache / dataset.name
    done = _fetched(folder)
    if done and (done["complete"] or (limit is not None and done["count"] >= limit)):
        return folder
    try:
        import datasets
        from tqdm import tqdm
    except ImportError as e:  # the eval extra: `nemotron.sh eval` syncs it
        raise CorpusError(f"fetching {dataset.name} needs the eval extra ({e})") from e
    try:
        stream = datasets.load_dataset(
            dataset.repo, dataset.config, split=dataset.split, streaming=True
        ).cast_column("audio", datasets.Audio(decode=False))
        folder.mkdir(parents=True, exist_ok=True)
        count = 0
        examples = _take(stream, limit)
        for example in tqdm(examples, total=limit, desc=f"fetching {dataset.name}", unit="utt"):
            _save(folder, count, example, dataset.text_field)
            count += 1
    except CorpusError:
        raise
    except Exception as e:  # the hub unreachable, a renamed dataset, no such locale
        raise CorpusError(
            f"could not fetch {dataset.repo} ({dataset.config}, {dataset.split}) from the Hugging "
            f"Face hub: {e}. To score your own copy, pass its folder: --dataset DIR, audio files "
            "with a .txt transcript each"
        ) from e
    (folder / FETCHED).write_text(json.dumps({"count": count, "complete": count != limit}))
    return folder


def _fetched(folder: Path) -> dict | None:
    try:
        return json.loads((folder / FETCHED).read_text())
    except (OSError, ValueError):
        return None


def _take(stream, limit: int | None) -> Iterator[dict]:
    for k, example in enumerate(stream):
        if limit is not None and k >= limit:
            return
        yield example


def _save(folder: Path, index: int, example: dict, text_field: str) -> None:
    audio = example["audio"]
    suffix = Path(audio.get("path") or "x.flac").suffix or ".flac"
    stem = folder / f"{index:05d}"
    if audio.get("bytes"):
        stem.with_suffix(suffix).write_bytes(audio["bytes"])
    else:
        raise CorpusError(f"example {index} came without its audio bytes")
    stem.with_suffix(".txt").write_text(example[text_field].strip() + "\n", encoding="utf-8")
