from textstats.__main__ import main


def test_cli_prints_the_report(text_file, capsys):
    assert main(["--top", "1", str(text_file)]) == 0
    assert capsys.readouterr().out == (
        "words: 11\ndistinct: 7\nsentences: 4\nwords per sentence: 2.8\n  5 fish\n"
    )
