"""The synthetic NER corpus and the shipped model's files (no model is loaded here)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("faker")

from genai.dlp._ner import LABELS, MODEL_DIR, model_meta, span_bin
from genai.dlp._ner.synth import generate


def test_the_corpus_is_reproducible_from_its_seed() -> None:
    first = generate(15, seed=3)
    assert first == generate(15, seed=3)
    assert first != generate(15, seed=4)


def test_spans_cover_their_values_and_do_not_overlap() -> None:
    examples = generate(200, seed=11)
    labels = set()
    for example in examples:
        previous_end = 0
        for start, end, label in example.spans:
            value = example.text[start:end]
            assert value and value == value.strip(), (example.text, value)
            assert start >= previous_end
            previous_end = end
            labels.add(label)
    assert set(LABELS) <= labels
    assert sum(not e.spans for e in examples) > 10  # texts with nothing to find


def test_the_model_ships_with_its_training_record() -> None:
    meta = json.loads((MODEL_DIR / "meta.json").read_text())
    assert set(meta["labels"]["ner"]) == set(LABELS)
    record = model_meta()
    assert record["labels"] == sorted(LABELS)
    assert record["command"].startswith("python -m genai.dlp._ner.train")
    assert set(record["calibration"]) == set(LABELS)
    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert size < 8 * 2**20


def test_span_bins() -> None:
    assert span_bin("Anna Berg", 2) == "cased_multi"
    assert span_bin("anna", 1) == "lower_single"
