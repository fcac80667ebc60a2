"""The wire protocols of the model services, shared by the services and their clients (the bot,
the bench, the tests): `asr` and `tts` for the WebSockets, `health` for `/health`, `auth` for
the shared token. Pure Python on purpose: the bot's image has no torch, NeMo or services."""
