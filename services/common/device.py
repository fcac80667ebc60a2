"""Choosing the torch device for a model service."""

from __future__ import annotations

DEVICES = ("auto", "cuda", "cpu")
# CUDA graphs in a model service's decoder: auto keeps them where a start-up check decodes the same.
CUDA_GRAPHS = ("auto", "on", "off")


def resolve_device(name: str) -> str:
    """`auto` is CUDA when a GPU is visible, else CPU; asking for CUDA without one is an error."""
    import torch

    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA GPU")
    return name
