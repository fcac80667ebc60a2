"""Word error rate of the running ASR service, per latency mode, beside the model card's
(`./scripts/nemotron.sh eval asr`; see __main__.py)."""
