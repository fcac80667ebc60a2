"""Trains the tiny scripted LLM in tiny_models/llm/ that the vLLM tests serve.

A ~0.8M-parameter model of Nemotron 3 Nano's own class (`NemotronHForCausalLM`: Mamba-2, attention
and MLP blocks laid out by `hybrid_override_pattern`) and a byte-level BPE tokenizer built here
with Nemotron's special tokens, trained on CPU until greedy decoding reproduces every scripted
reply exactly. vLLM's CPU build cannot run Nemotron's mixture-of-experts blocks (its fused MoE
refuses the non-gated relu2 experts off CUDA), so the pattern puts dense MLP blocks (`-`) where
Nemotron has MoE blocks (`E`). The prompts are rendered with the committed chat template
(`tiny_llm/chat_template.jinja`, in Nemotron 3 Nano's format) from the messages and tools the bot
really sends, so vLLM's `nemotron_v3` reasoning parser and `qwen3_coder` tool parser see what they
would see from Nemotron.

The Mamba layers' state carries the whole prompt, so training uses whole prompts: the bot's
system prompt and tools (bots/llm.py, bots/tools.py), and a bare setup (no system prompt, no
tools) for the tests that talk to vLLM directly. Another system prompt needs retraining. Each
script is trained after several histories (HISTORIES) and checked after others it never saw, so
the reply to a spoken turn does not hang on what the bot said before it.

The scripts cover what the tests type ("What is 12 times 7?") and every phrase the trained tiny
ASR (tests/models/train_tiny_asr.py) writes for a whole turn, capitals and punctuation as it writes
them ("What is twelve times seven?", "Yes.", "Mm-hmm."): the end-to-end tests and the bench say
them. The fragments it writes for a turn paused in mid-sentence ("What is") have no script.

    uv run --no-sync python -m tests.models.train_tiny_llm [--out tiny_models/llm]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from bots.llm import VOICE_SYSTEM_PROMPT
from bots.tools import evaluate
from settings import TINY_LLM

MODEL_DIR = TINY_LLM
SEED = 1234
# Nemotron 3 Nano's layout ("MEMEM*EMEMEM*E...": Mamba-2 `M`, attention `*`, MoE `E`) in
# little, with dense MLP blocks `-` for the MoE blocks vLLM's CPU build cannot run.
PATTERN = "M-M*-M-"
# Room for long generations (the barge-in test); Nemotron's attention has no positions of its own.
MAX_LENGTH = 32768
# The lead, in logits, of every scripted token over the runner-up: enough to survive bf16 and
# vLLM's own kernels.
MIN_MARGIN = 3.0
# Rows per forward pass, gradients summed over the passes: all of a setup's rows in one pass took
# over 10 GB.
ROWS_PER_PASS = 64

# Nemotron's special tokens: unknown (also padding), begin and end of text, and the chat turns'
# markers; a chat turn ends with <|im_end|>.
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = [UNK, BOS, EOS, "<|im_start|>", "<|im_end|>"]
# Plain added tokens, as in Nemotron's tokenizer: one id each, and kept in the decoded text
# where vLLM's parsers look for them.
TAG_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>"]
TAG_TOKENS += ["<tool_response>", "</tool_response>"]


@dataclass(frozen=True)
class Script:
    """One scripted turn: the conversation so far and the exact reply the model gives."""

    name: str
    messages: list[dict]
    reply: str
    thinking: bool = False


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def _tool_call(name: str, **arguments: str) -> str:
    params = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in arguments.items())
    return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"


def _tool_turns(name: str, arguments: dict, result: dict) -> list[dict]:
    """The two messages Pipecat adds after a tool call, as vLLM hands them to the template."""
    call = {"id": "call-1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return [
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call-1", "content": json.dumps(result)},
    ]


SKY = "Sunlight scatters off the air, and blue light scatters the most, so the sky looks blue."
MATH = {"expression": "12 * 7"}
MATH_TURNS = _tool_turns("calculate", MATH, {**MATH, "result": evaluate("12 * 7")})
HELLO = "Hello! How can I help you today?"
STORY = (
    "Once upon a time, a small robot lived by the sea. Every morning it counted the waves"
    " and sang to the gulls. One night a storm came, and the robot guided a lost boat home"
    " with its light. From then on, the fishermen called it the keeper of the bay."
)
# The end-to-end tests' greeting: long enough (about 5 s spoken) for the user to talk over it.
LONG_GREETING = (
    "Hello there. I am the test bot. I keep talking for a while. This is my fourth sentence. "
    "And here is a fifth one."
)
# Short turns as the tiny ASR writes them: answers, and backchannels taken as a whole turn.
SHORT = [
    ("Yes.", "Great."),
    ("No.", "Alright."),
    ("Okay.", "Okay."),
    ("Thanks.", "You're welcome."),
    ("Sure.", "Great."),
    ("Wait.", "Sure, take your time."),
    ("Yes please.", "Here you go."),
    ("No thanks.", "Alright."),
    ("Mm-hmm.", "Okay."),
    ("Yeah.", "Okay."),
    ("Right.", "Okay."),
]
SCRIPTS = {
    s.name: s
    for s in [
        Script("hello", [_user("Hello!")], HELLO),
        Script("sky", [_user("Why is the sky blue?")], SKY),
        Script(
            "sky_thinking",
            [_user("Why is the sky blue?")],
            "The user wants a short reason. Blue light has a short wavelength, so the air"
            " scatters it most.</think>" + SKY,
            thinking=True,
        ),
        Script("math_call", [_user("What is 12 times 7?")], _tool_call("calculate", **MATH)),
        Script("math_reply", [_user("What is 12 times 7?"), *MATH_TURNS], "12 times 7 is 84."),
        Script("story", [_user("Tell me a story.")], STORY),
        # As the trained tiny ASR writes what the end-to-end tests and the bench say.
        Script("hello_spoken", [_user("Hello there.")], HELLO),
        Script(
            "math_call_spoken",
            [_user("What is twelve times seven?")],
            _tool_call("calculate", **MATH),
        ),
        Script(
            "math_reply_spoken",
            [_user("What is twelve times seven?"), *MATH_TURNS],
            "12 times 7 is 84.",
        ),
        Script("story_spoken", [_user("Tell me a long story.")], STORY),
        Script("stop_spoken", [_user("Stop.")], "Okay, I will stop."),
        # The model has no clock: a time tool's result changes every minute, and no fixed reply
        # could follow it. It gets the hello reply, as it did before it had a script.
        Script("time_spoken", [_user("What time is it?")], HELLO),
        *(Script(f"short_spoken: {turn}", [_user(turn)], reply) for turn, reply in SHORT),
    ]
}


def _cuts(text: str) -> list[str]:
    """What a listener may have let the bot say of `text` before cutting in: each sentence, and
    one cut inside a sentence."""
    sentences = text.split(". ")
    cuts = [". ".join(sentences[:n]) + "." for n in range(1, len(sentences))] + [text]
    return [*cuts, " ".join(text.split()[:6])]


# What may come before a turn: nothing, a greeting (whole or cut off), an earlier exchange.
HISTORIES = [
    [],
    [_assistant("Hi! I'm listening.")],
    *([_assistant(cut)] for cut in _cuts(LONG_GREETING)),
    [_user("Hello there."), _assistant(HELLO)],
    [_user("What is 12 times 7?"), *MATH_TURNS, _assistant("12 times 7 is 84.")],
    # The story cut off by "Stop." or "Wait.": the context keeps what was spoken.
    [_user("Tell me a long story."), _assistant(_cuts(STORY)[-1])],
]
# Never trained on: checked, so that replies follow any history.
HELD_OUT_HISTORIES = [
    [_assistant("Good morning. It is nice to hear from you again.")],
    [_user("Stop."), _assistant("Okay, I will stop.")],
    [_user("Yes."), _assistant("Great.")],
]


def openai_tools() -> list[dict]:
    """The bot's tools in the OpenAI form Pipecat sends them in."""
    from pipecat.adapters.llm.services.open_ai_adapter import OpenAILLMAdapter

    from bots.tools import TOOLS

    return [dict(t) for t in OpenAILLMAdapter().to_provider_tools_format(TOOLS)]


def render(
    tokenizer, script: Script, system: str, tools: list[dict] | None, history: list[dict] = ()
) -> str:
    system_turn = [{"role": "system", "content": system}] if system else []
    messages = system_turn + list(history) + script.messages
    return tokenizer.apply_chat_template(
        messages,
        tools=tools,
        add_generation_prompt=True,
        enable_thinking=script.thinking,
        tokenize=False,
    )


def build_tokenizer(template: str, corpus: list[str]):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens(SPECIAL_TOKENS)
    bpe.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TAG_TOKENS])
    # The merges are learned from the text between the added tokens.
    for token in SPECIAL_TOKENS + TAG_TOKENS:
        corpus = [text.replace(token, "\n") for text in corpus]
    trainer = trainers.BpeTrainer(
        vocab_size=900, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        unk_token=UNK,
        bos_token=BOS,
        eos_token="<|im_end|>",
        pad_token=UNK,
        chat_template=template,
        clean_up_tokenization_spaces=False,
    )


def build_model(tokenizer):
    import torch
    from transformers import NemotronHConfig, NemotronHForCausalLM

    torch.manual_seed(SEED)
    config = NemotronHConfig(
        vocab_size=-(-len(tokenizer) // 64) * 64,
        hidden_size=128,
        hybrid_override_pattern=PATTERN,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        intermediate_size=256,
        mamba_num_heads=8,
        mamba_head_dim=32,
        ssm_state_size=32,
        n_groups=1,
        chunk_size=64,
        max_position_embeddings=MAX_LENGTH,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return NemotronHForCausalLM(config)


def encode(tokenizer, script: Script, system, tools, history: list[dict]):
    """(prompt + reply + end-of-turn ids, prompt length)."""
    text = render(tokenizer, script, system, tools, history)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    reply = tokenizer(script.reply, add_special_tokens=False)["input_ids"]
    return prompt_ids + reply + [tokenizer.eos_token_id], len(prompt_ids)


def reply_logits(model, batches: list[list[tuple[list, int]]]):
    """The logits that predict each row's reply, and the tokens they should predict."""
    import torch

    out = [_reply_logits(model, part) for part in passes(batches)]
    return torch.cat([logits for logits, _ in out]), torch.cat([targets for _, targets in out])


def passes(batches: list[list[tuple[list, int]]]) -> list[list[tuple[list, int]]]:
    return [
        rows[i : i + ROWS_PER_PASS] for rows in batches for i in range(0, len(rows), ROWS_PER_PASS)
    ]


def _reply_logits(model, rows: list[tuple[list, int]]):
    import torch

    # The rows share the system turn: its state is computed once, and learned from only through
    # what comes after it.
    cut = min(p for _, p in rows) - 1
    first = rows[0][0]
    cut = next((i for i in range(cut) if any(ids[i] != first[i] for ids, _ in rows)), cut)
    with torch.no_grad():
        cache = model.model(input_ids=torch.tensor([first[:cut]]), use_cache=True).past_key_values
    cache.reorder_cache(torch.zeros(len(rows), dtype=torch.long))
    # Padded at the end, where no causal layer looks back from a reply.
    width = max(len(ids) for ids, _ in rows) - cut
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    row_idx, col_idx, targets = [], [], []
    for i, (ids, prompt_len) in enumerate(rows):
        input_ids[i, : len(ids) - cut] = torch.tensor(ids[cut:])
        row_idx += [i] * (len(ids) - prompt_len)
        col_idx += range(prompt_len - 1 - cut, len(ids) - 1 - cut)
        targets += ids[prompt_len:]
    hidden = model.model(input_ids=input_ids, past_key_values=cache, use_cache=True)
    return model.lm_head(hidden.last_hidden_state[row_idx, col_idx]).float(), torch.tensor(targets)


def margin(model, batches: list[list[tuple[list, int]]]) -> float:
    """The smallest lead of the scripted token over the best other one, over every reply position.

    Above zero, greedy decoding reproduces every reply exactly.
    """
    import torch

    with torch.no_grad():
        logits, targets = reply_logits(model, batches)
    right = logits.gather(1, targets[:, None])[:, 0]
    logits.scatter_(1, targets[:, None], float("-inf"))
    return (right - logits.max(dim=1).values).min().item()


def train(out: Path, max_steps: int) -> None:
    import torch
    from tokenizers import Tokenizer, models
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    torch.manual_seed(SEED)
    template = (out / "chat_template.jinja").read_text()
    tools = openai_tools()
    # The bot's setup, and a bare one (no system prompt, no tools) so short prompts work too.
    setups = [(VOICE_SYSTEM_PROMPT, tools), ("", None)]

    # Renders prompts before the real tokenizer exists: only its template is used.
    renderer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.BPE()), chat_template=template
    )
    corpus = [
        render(renderer, s, *setup, history) + s.reply
        for s in SCRIPTS.values()
        for setup in setups
        for history in HISTORIES
    ]
    tokenizer = build_tokenizer(template, corpus)
    model = build_model(tokenizer)
    print(f"vocab {len(tokenizer)}, params {sum(p.numel() for p in model.parameters()):,}")

    def batches(histories: list[list[dict]]) -> list[list[tuple[list, int]]]:
        # One batch per setup: prompts of about one length, so little padding.
        return [
            [encode(tokenizer, s, *setup, h) for s in SCRIPTS.values() for h in histories]
            for setup in setups
        ]

    rows = batches(HISTORIES)
    # Including histories never trained on.
    checks = batches([*HISTORIES, *HELD_OUT_HISTORIES])
    print(f"{sum(map(len, rows))} training rows, {sum(map(len, checks))} checks")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    start = time.monotonic()
    lead = float("-inf")
    for step in range(1, max_steps + 1):
        model.train()
        # The mean over every reply token of every row, as one pass would give it.
        count = sum(len(ids) - prompt_len for batch in rows for ids, prompt_len in batch)
        loss = 0.0
        for part in passes(rows):
            logits, targets = _reply_logits(model, part)
            part_loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / count
            part_loss.backward()
            loss += part_loss.item()
        optimizer.step()
        optimizer.zero_grad()
        if step % 25 == 0:
            model.eval()
            lead = margin(model, checks)
            print(f"step {step}: loss {loss:.4f}, margin {lead:.2f}", flush=True)
            if lead >= MIN_MARGIN:
                break
    if lead < MIN_MARGIN:
        raise SystemExit(f"training stopped at a margin of {lead:.2f} < {MIN_MARGIN}")

    # vLLM runs the committed bf16 weights: they must keep a clear lead too.
    model = model.to(torch.bfloat16).eval()
    lead = margin(model, checks)
    print(f"bf16 margin {lead:.2f}")
    if lead < MIN_MARGIN / 2:
        raise SystemExit("the bf16 weights lose the lead; train with a higher MIN_MARGIN")
    # The scripts hold under greedy decoding, which top_k=1 makes vLLM's default for any client
    # (the bot sends no temperature; at vLLM's default of 1.0 a tool call's arguments came out
    # garbled about one time in three).
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        top_k=1,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"saved to {out} after {time.monotonic() - start:.0f} s of training")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--max-steps", type=int, default=2000)
    args = parser.parse_args()
    train(args.out, args.max_steps)


if __name__ == "__main__":
    main()
