import pytest

from textstats import sentences, words


def test_words_are_lower_cased_and_possessives_dropped(text):
    assert words(text) == ["one", "fish", "two", "fish", "red", "fish", "blue", "fish", "the", "fish", "end"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("read-only", ["read-only"]),
        ("don't", ["don't"]),
        ("a -- b", ["a", "b"]),
        ("", []),
        ("v2 and 3", ["v2", "and", "3"]),
    ],
    ids=["hyphen", "apostrophe", "dashes", "empty", "digits"],
)
def test_word_edges(text, expected):
    assert words(text) == expected


def test_sentences(text):
    assert sentences(text) == ["One fish.", "Two fish!", "Red fish, blue fish?", "The fish's end."]


def test_sentences_collapse_whitespace():
    assert sentences("a\n b.\n\n c") == ["a b.", "c"]
