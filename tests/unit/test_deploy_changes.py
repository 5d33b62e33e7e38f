"""Reading spec files and changing a revision's traffic (what `genai deploy` and the admin
API share), in-process: every refusal names its field, and nothing else changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from apps.cli._deploy import load_spec, parse_weights
from apps.deployments import TrafficChange, retarget
from genai.errors import ValidationError
from genai.registry import DeploymentRevision

SPEC: dict[str, Any] = {
    "targets": [
        {"name": "stable", "url": "http://127.0.0.1:8001/v1", "model": "m", "weight": 90},
        {"name": "canary", "url": "http://127.0.0.1:8001/v1", "model": "m", "weight": 10},
    ],
    "fallbacks": [{"name": "spare", "url": "http://127.0.0.1:8002/v1", "model": "m"}],
    "retries": 1,
}


def _revision(spec: dict[str, Any]) -> DeploymentRevision:
    return DeploymentRevision(
        kind="deployment",
        name="support",
        version=3,
        description="",
        created_at=datetime.now(UTC),
        created_by="user:admin",
        aliases=[],
        model=None,
        adapter=None,
        spec=spec,
    )


def _change(spec: dict[str, Any] = SPEC, **given: Any) -> dict[str, Any]:
    changed = retarget(_revision(spec), TrafficChange(**given))
    return changed.model_dump(mode="json", exclude_unset=True)


def test_weights_change_only_the_targets_named() -> None:
    spec = _change(weights={"canary": 30})
    assert {t["name"]: t["weight"] for t in spec["targets"]} == {"stable": 90, "canary": 30}
    assert spec["retries"] == 1 and spec["fallbacks"] == SPEC["fallbacks"]


def test_a_target_moves_to_the_shadow_and_back() -> None:
    shadowed = _change(shadow="canary", shadow_sample=0.2)
    assert [t["name"] for t in shadowed["targets"]] == ["stable"]
    assert shadowed["shadow"]["target"]["name"] == "canary" and shadowed["shadow"]["sample"] == 0.2
    from_fallback = _change(shadow="spare")
    assert from_fallback["fallbacks"] == [] and from_fallback["shadow"]["sample"] == 1.0
    promoted = _change(shadowed, weights={"canary": 5})
    assert "shadow" not in promoted
    assert {t["name"]: t["weight"] for t in promoted["targets"]} == {"stable": 90, "canary": 5}
    assert "shadow" not in _change(shadowed, shadow="none")
    assert "shadow" not in _change(shadowed, shadow=None)
    resampled = _change(shadowed, shadow_sample=0.5)
    assert resampled["shadow"]["sample"] == 0.5 and resampled["targets"] == shadowed["targets"]


@pytest.mark.parametrize(
    ("given", "field", "words"),
    [
        ({}, "traffic", "nothing to change"),
        ({"weights": {"ghost": 1}}, "weights", "no target named 'ghost' to weigh"),
        ({"shadow": "ghost"}, "shadow", "no target named 'ghost' to shadow"),
        ({"shadow": "canary", "weights": {"canary": 1}}, "shadow", "at once"),
        ({"shadow_sample": 0.5}, "shadow_sample", "no shadow to sample"),
        ({"weights": {"stable": 0, "canary": 0}}, "spec", "needs a target with weight above 0"),
        ({"shadow": "stable", "weights": {"canary": 0}}, "spec", "weight above 0"),
    ],
)
def test_refused_changes_name_their_field(given: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _change(**given)
    assert words in caught.value.message
    assert caught.value.field == field


def test_a_revision_without_a_usable_spec_cannot_change_traffic() -> None:
    with pytest.raises(ValidationError, match="has no usable spec"):
        _change({}, policy="ab")


def test_the_description_names_the_change() -> None:
    change = TrafficChange(weights={"a": 9, "b": 1}, policy="ab", shadow=None)
    assert change.summary() == "traffic: weights a=9, b=1; policy ab; shadow none"


def test_weights_parse_or_say_how_to_write_them() -> None:
    assert parse_weights("stable=90, canary=10") == {"stable": 90.0, "canary": 10.0}
    for bad in ("stable:1", "=3", "a=b", "a=1,,b=2"):
        with pytest.raises(ValidationError, match="write NAME=WEIGHT pairs"):
            parse_weights(bad)


def test_spec_files_in_yaml_or_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text("targets:\n  - {name: a, backend: extractive}\n# a comment\n")
    assert load_spec(yaml_file) == {"targets": [{"name": "a", "backend": "extractive"}]}
    json_file = tmp_path / "s.json"
    json_file.write_text(json.dumps(SPEC))
    assert load_spec(json_file) == SPEC


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("s.yaml", "targets: [\n", "is not valid YAML: expected the node content"),
        ("s.yaml", "a: 1\n  b: 2\n", "at line 2"),
        ("s.json", "{targets: }", "is not valid JSON: Expecting property name"),
        ("s.yml", "- a\n- b\n", "expected a mapping with 'targets', got list"),
        ("s.yaml", "", "got NoneType"),
    ],
)
def test_unreadable_spec_files_say_why(tmp_path: Path, name: str, text: str, words: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValidationError) as caught:
        load_spec(path)
    assert words in caught.value.message and str(path) in caught.value.message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"cannot read .*nowhere\.yaml: No such file"):
        load_spec(tmp_path / "nowhere.yaml")
