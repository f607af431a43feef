import pytest

TEXT = "One fish. Two fish! Red fish, blue fish? The fish's end."


@pytest.fixture
def text():
    return TEXT


@pytest.fixture
def text_file(tmp_path, text):
    p = tmp_path / "fish.txt"
    p.write_text(text, encoding="utf-8")
    return p
