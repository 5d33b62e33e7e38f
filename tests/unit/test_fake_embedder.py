"""``genai.testing.FakeEmbedder``: the Embedder contract in both modes, and what tests rely
on: vectors that depend on the text only, bag-of-words similarity when asked, the declared
name and dimension, and the record of calls."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genai.errors import ValidationError
from genai.models import Embedder
from genai.testing import EmbedderSuite, FakeEmbedder


class TestFakeEmbedder(EmbedderSuite):
    @pytest.fixture
    def embedder(self) -> Embedder:
        return FakeEmbedder()


class TestFakeWordEmbedder(EmbedderSuite):
    @pytest.fixture
    def embedder(self) -> Embedder:
        return FakeEmbedder(32, model_name="words", words=True)


def test_it_declares_its_name_and_dimension() -> None:
    embedder = FakeEmbedder(12, model_name="my-model")
    assert (embedder.dimension, embedder.model_name) == (12, "my-model")
    assert embedder.embed(["x"]).shape == (1, 12)
    assert FakeEmbedder().model_name == "fake-embedder"


def test_vectors_depend_on_the_text_only() -> None:
    one, two = FakeEmbedder(16), FakeEmbedder(16, model_name="another name")
    assert np.array_equal(one.embed(["same text"]), two.embed(["same text"]))
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from genai.testing import FakeEmbedder;"
            "print(FakeEmbedder(16).embed(['same text'])[0].tolist())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(one.embed(["same text"])[0].tolist())  # any process


def test_different_texts_are_nearly_orthogonal_in_text_mode() -> None:
    rows = FakeEmbedder(256).embed([f"question {i}" for i in range(20)])
    similarity = rows @ rows.T
    off_diagonal = similarity[~np.eye(20, dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.35
    paraphrases = FakeEmbedder(256).embed(["open an account", "open an account please"])
    assert paraphrases[0] @ paraphrases[1] < 0.35  # no notion of meaning in this mode


def test_in_word_mode_shared_words_make_texts_similar() -> None:
    embedder = FakeEmbedder(256, words=True)
    stored, reordered, close, far = embedder.embed(
        [
            "how do I open an account",
            "Open an account: how do I?",
            "how can I open an account",
            "where is the nearest branch",
        ]
    )
    assert stored @ reordered == pytest.approx(1.0, abs=1e-6)  # case and punctuation aside
    assert stored @ close == pytest.approx(5 / 6, abs=0.05)  # 5 of 6 words shared
    assert abs(stored @ far) < 0.2


def test_a_text_without_words_still_gets_a_unit_vector() -> None:
    rows = FakeEmbedder(8, words=True).embed(["", "?!", "..."])
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    assert not np.allclose(rows[1], rows[2])


def test_calls_are_recorded() -> None:
    embedder = FakeEmbedder()
    embedder.embed(["a", "b"])
    embedder.embed([])
    assert embedder.calls == [["a", "b"], []]


@pytest.mark.parametrize("options", [{"dimension": 1}, {"model_name": ""}])
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FakeEmbedder(**options)  # type: ignore[arg-type]


def test_importing_it_stays_light() -> None:
    code = (
        "import sys, genai.testing;"
        "genai.testing.FakeEmbedder; genai.testing.FakeLLM;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'pytest', 'fastapi', 'uvicorn', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
