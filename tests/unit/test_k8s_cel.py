"""The CRD's CEL rules (``x-kubernetes-validations``), evaluated with cel-python, agree with
the typed spec's own checks: the API server refuses on write exactly what the operator and
``genai k8s render`` would refuse later."""

from __future__ import annotations

import itertools
from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel
from pydantic import ValidationError

from genai.deploy import Autoscaling, crd


def _rules() -> list[tuple[tuple[str, ...], dict[str, str]]]:
    """Every CEL rule of the CRD's spec schema, with the path of the node it sits on."""
    found: list[tuple[tuple[str, ...], dict[str, str]]] = []

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for rule in node.get("x-kubernetes-validations", []):
            found.append((path, rule))
        for name, child in (node.get("properties") or {}).items():
            walk(child, (*path, name))

    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    walk(schema, ())
    return found


def _cel_accepts(node: dict[str, Any], rules: list[dict[str, str]]) -> bool:
    env = celpy.Environment()
    for rule in rules:
        program = env.program(env.compile(rule["rule"]))
        if not bool(program.evaluate({"self": json_to_cel(node)})):
            return False
    return True


def test_the_crd_has_cel_rules_where_fields_depend_on_each_other() -> None:
    assert {path for path, _ in _rules()} == {("autoscaling",)}


@pytest.mark.parametrize(
    ("low", "high", "engine"),
    list(itertools.product([0, 1, 2, 3], [1, 2, 3], ["hpa", "keda", None])),
)
def test_cel_rules_agree_with_the_typed_spec(low: int, high: int, engine: str | None) -> None:
    given: dict[str, Any] = {"minReplicas": low, "maxReplicas": high}
    if engine is not None:
        given["engine"] = engine
    try:
        Autoscaling.model_validate(given)
        typed = True
    except ValidationError:
        typed = False
    rules = [rule for path, rule in _rules() if path == ("autoscaling",)]
    assert _cel_accepts(given, rules) is typed
    # the API server applies the schema's defaults before it runs the rules
    defaulted = Autoscaling.model_validate(given).model_dump(by_alias=True) if typed else None
    if defaulted is not None:
        assert _cel_accepts(defaulted, rules)
