"""Programs run from a checkout: nemotron.sh and the voice-to-voice bench client."""
