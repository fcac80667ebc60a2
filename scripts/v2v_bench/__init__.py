"""The voice-to-voice bench: a WebRTC client of the running bot (python -m scripts.v2v_bench)."""
