"""The language tag a multilingual model writes into its text in `auto` mode: `<en-US>` after
terminal punctuation, spelled with ordinary vocabulary pieces. It never reaches a client's text;
the server reports it as the transcript's `language`."""

from __future__ import annotations

import re

# The tag pattern of transformers' Nemotron3_5AsrProcessor (`<xx-XX>`, `<nah-MX>`).
_TAG = re.compile(r"\s*<([a-z]{2,3}-[A-Za-z]{2})>")
# What an interim may end with while the model is still writing a tag: `<`, `<en`, `<en-U`, ...
_PARTIAL = re.compile(r"\s*<(?:[a-z]{1,3}(?:-[A-Za-z]{0,2})?)?$")


def split_language(text: str, final: bool) -> tuple[str, str | None]:
    """The text without its tags, and the locale of the last one (None if none). An interim's
    half-written tag at its end is held back too; the next interim shows what it was."""
    tags = _TAG.findall(text)
    text = _TAG.sub("", text)
    if not final:
        text = _PARTIAL.sub("", text)
    return text.strip(), tags[-1] if tags else None
