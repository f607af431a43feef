from textstats import frequencies, report, top


def test_frequencies_skip_stop_words(text):
    f = frequencies(text)
    assert f["fish"] == 5
    assert "the" not in f


def test_frequencies_can_keep_stop_words(text):
    assert frequencies(text, skip_stop_words=False)["the"] == 1


def test_top_breaks_ties_alphabetically():
    assert top({"b": 2, "a": 2, "c": 3, "d": 1}, 3) == [("c", 3), ("a", 2), ("b", 2)]


def test_report(text):
    r = report(text, 2)
    assert (r.words, r.distinct, r.sentences) == (11, 7, 4)
    assert r.top == [("fish", 5), ("blue", 1)]
    assert r.words_per_sentence == 2.8


def test_report_on_empty_text():
    assert report("").words_per_sentence == 0.0
