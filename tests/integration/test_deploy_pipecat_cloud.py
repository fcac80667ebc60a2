"""The Pipecat Cloud deployment (deploy/pipecat-cloud) without an account: the deploy config
parses with the keys Pipecat Cloud needs, the secret set lists every address and token the bot
reads, and the entry module the base image imports hands a session shaped like Pipecat Cloud's
(Daily room, token, request body) to our bot: a Daily transport for that room, with the body's
choices applied. The Dockerfile is linted by `nemotron.sh test` (hadolint)."""

import importlib.util
import tomllib
from pathlib import Path

from pipecat.runner.types import DailyRunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.daily.transport import DailyTransport

import bots.bot
import settings
from bots.config import BotConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "pipecat-cloud"


def test_the_deploy_config_has_what_pipecat_cloud_needs():
    config = tomllib.loads((DEPLOY / "pcc-deploy.toml").read_text())
    assert {"agent_name", "image", "secret_set", "agent_profile"} <= config.keys()
    assert config["scaling"]["min_agents"] >= 1


def test_the_secret_set_holds_every_address_and_token_the_bot_reads():
    lines = (DEPLOY / "secrets.env.example").read_text().splitlines()
    keys = {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}
    addresses = {var for name, (var, _) in settings.ADDRESSES.items() if name != "bot"}
    assert addresses | {"NEMOTRON_API_KEY", "MODAL_PROXY_KEY", "MODAL_PROXY_SECRET"} == keys


def entry_module():
    spec = importlib.util.spec_from_file_location("bot", DEPLOY / "bot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_a_pipecat_cloud_session_reaches_our_bot():
    assert entry_module().bot is bots.bot.bot
    args = DailyRunnerArguments(
        room_url="https://example.daily.co/nemotron-voice",
        token="a-meeting-token",
        body={"asr_latency_ms": 560, "tts_voice": "sofia"},
    )
    transport = await create_transport(args, bots.bot.transport_params())
    assert isinstance(transport, DailyTransport)
    assert transport.room_url == args.room_url
    config = BotConfig().with_overrides(args.body)
    assert (config.asr_latency_ms, config.tts_voice) == (560, "sofia")
