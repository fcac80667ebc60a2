"""The launcher behind `scripts/nemotron.sh`: start, stop, restart, status, logs, shell, doctor
and bench. The script only finds uv and syncs the venv, then runs `python -m launcher`."""
