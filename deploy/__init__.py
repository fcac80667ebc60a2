"""Deployments beyond one machine: Modal for the model services, Pipecat Cloud for the bot."""
