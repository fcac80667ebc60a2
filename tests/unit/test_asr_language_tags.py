"""The multilingual model's language tags (`<en-US>` after terminal punctuation, in `auto`) are
cut from the text clients see, final and interim, and the last one is reported."""

import pytest

from services.asr.language_tags import split_language


@pytest.mark.parametrize(
    ("text", "shown", "language"),
    [
        ("hello there.<en-US>", "hello there.", "en-US"),
        ("hello there. <en-US> how are you?<en-GB>", "hello there. how are you?", "en-GB"),
        ("<de-DE> guten tag.", "guten tag.", "de-DE"),
        ("nahuatl.<nah-MX>", "nahuatl.", "nah-MX"),
        ("no tag at all", "no tag at all", None),
        ("a <b> c", "a <b> c", None),  # not a locale: the model's own text
    ],
)
def test_final_text_loses_whole_tags(text, shown, language):
    assert split_language(text, final=True) == (shown, language)


@pytest.mark.parametrize("partial", ["<", "<e", "<en", "<en-", "<en-U", "<en-US", " <en-"])
def test_an_interim_holds_back_a_half_written_tag(partial):
    assert split_language(f"hello there.{partial}", final=False) == ("hello there.", None)
    # Once whole, the tag goes and its locale is reported.
    assert split_language("hello there.<en-US> how", final=False) == ("hello there. how", "en-US")


def test_an_interim_keeps_text_that_cannot_become_a_tag():
    assert split_language("x < y", final=False) == ("x < y", None)
    assert split_language("hello there.<en-US", final=True)[0] == "hello there.<en-US"
