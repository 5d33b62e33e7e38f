"""The ``GenAIDeployment`` CustomResourceDefinition, generated from the typed spec.

Kubernetes wants a *structural* OpenAPI v3 schema: every node typed, no ``$ref``, no
``anyOf`` of alternatives. :func:`structural` turns pydantic's JSON Schema of
:class:`GenAIDeploymentSpec` into one (references inlined, ``X | None`` as ``X`` and not
required, titles dropped), so the CRD cannot drift from the spec ``genai k8s render`` and
the operator parse. The rules that span fields are CEL rules (``x-kubernetes-validations``)
the API server checks on write; the operator checks the whole spec again with pydantic.
"""

from __future__ import annotations

import copy
from typing import Any

from genai.deploy._objects import GROUP, VERSION
from genai.deploy._spec import GenAIDeploymentSpec

__all__ = ["crd", "spec_schema", "structural"]

KIND = "GenAIDeployment"
PLURAL = "genaideployments"

#: Cross-field rules, checked by the API server (CEL) and by pydantic alike.
_RULES: dict[tuple[str, ...], list[dict[str, str]]] = {
    ("autoscaling",): [
        {
            "rule": "!has(self.minReplicas) || !has(self.maxReplicas) "
            "|| self.minReplicas <= self.maxReplicas",
            "message": "minReplicas must not be above maxReplicas",
        },
        {
            "rule": "!has(self.minReplicas) || self.minReplicas > 0 "
            "|| (has(self.engine) && self.engine == 'keda')",
            "message": "minReplicas 0 (scale to zero) needs engine: keda",
        },
    ],
}


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A structural OpenAPI v3 schema from a pydantic JSON Schema (``$defs`` inlined)."""
    defs = schema.get("$defs", {})

    def walk(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return walk(merged)
        alternatives = node.get("anyOf")
        if alternatives is not None:
            kept = [a for a in alternatives if a.get("type") != "null"]
            if len(kept) != 1:
                raise TypeError(f"a union the CRD schema cannot express: {alternatives}")
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            if rest.get("default", 0) is None:
                rest.pop("default")
            return walk({**kept[0], **rest})
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "$defs"):
                continue
            if key == "properties":
                out[key] = {name: walk(sub) for name, sub in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = walk(value) if value else {"x-kubernetes-preserve-unknown-fields": True}
            elif key == "const":
                out["enum"] = [value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):  # OpenAPI 3.0: a flag
                out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
                out[key] = True
            elif key == "additionalProperties" and value is False:
                continue  # Kubernetes prunes unknown fields; it forbids this with properties
            else:
                out[key] = copy.deepcopy(value)
        if "enum" in out and "type" not in out:
            out["type"] = "string"
        if "properties" in out:
            out.setdefault("type", "object")
        return out

    return walk(schema)


def spec_schema() -> dict[str, Any]:
    """The ``spec`` schema of the CRD, with its CEL rules."""
    schema = structural(GenAIDeploymentSpec.model_json_schema(by_alias=True, mode="validation"))
    for path, rules in _RULES.items():
        node = schema
        for part in path:
            node = node["properties"][part]
        node["x-kubernetes-validations"] = rules
    return schema


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition (apiextensions.k8s.io/v1)."""
    ready = ".status.conditions[?(@.type=='Ready')].status"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": "genaideployment",
                "shortNames": ["gd"],
                "categories": ["genai"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Project", "type": "string", "jsonPath": ".spec.project"},
                        {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
                        {"name": "Ready", "type": "string", "jsonPath": ready},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A project's model on vLLM with LoRA adapters, "
                            "behind its gateway (genai-platform).",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
