"""Tiny models of the real checkpoints' classes, for the `cpu-test` profile and the tests.

`asr.py` and `tts.py` build them from config (random weights); `asr_trained.nemo` (the ASR trained
on a few phrases) and `llm/` (a scripted model in Nemotron 3 Nano's chat format) are committed, and
tests/models/ holds the scripts that train them. The product imports this package; it imports
nothing from tests/.
"""
