"""Modal apps for the model services: `modal deploy -m deploy.modal.asr` (and .tts, .llm)."""
