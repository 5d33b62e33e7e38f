"""The layering of DESIGN.md: imports flow downward (light imports and the public API are
checked in test_public_api.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CAPABILITIES = ("rag", "prompts", "cache", "finetune", "eval")
PACKAGES = ("genai", *CAPABILITIES, "agents", "apps")

# What each package may import of the project's own packages.
ALLOWED: dict[str, set[str]] = {
    "genai": {"genai"},
    **{cap: {"genai", cap} for cap in CAPABILITIES},
    "agents": {"genai", "agents", *CAPABILITIES},
    "apps": set(PACKAGES),
}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_downward(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    violations = []
    for path in files:
        own = _imported_roots(path) & set(PACKAGES)
        for bad in sorted(own - ALLOWED[package]):
            violations.append(f"{path.relative_to(ROOT)} imports {bad}")
    assert not violations, "layering broken:\n" + "\n".join(violations)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom rag.x import y\n\ndef f():\n    import apps.cli\n")
    assert _imported_roots(module) >= {"rag", "apps", "os"}


def test_packages_are_typed() -> None:
    for package in PACKAGES:
        assert (ROOT / package / "py.typed").exists(), f"{package} lacks py.typed"


def test_schema_revision_constant_is_the_migrations_head() -> None:
    from genai.store import SCHEMA_REVISION, head_revision

    assert head_revision() == SCHEMA_REVISION, "bump SCHEMA_REVISION with each new migration"
