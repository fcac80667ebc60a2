"""Runs the model services together: the service table, the supervisor, health checks."""
