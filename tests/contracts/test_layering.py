"""The layering of DESIGN.md: imports flow downward, and `import genai` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
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
HEAVY = (
    "torch",
    "transformers",
    "peft",
    "chromadb",
    "presidio_analyzer",
    "presidio_anonymizer",
    "vllm",
    "sentence_transformers",
    "langchain",
    "llama_index",
    "ragas",
    "bitsandbytes",
)


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
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


def test_import_genai_is_light() -> None:
    code = (
        "import sys, genai, genai.registry, genai.tenancy, genai.store, genai.models;"
        "import genai.testing;"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}];"
        "print(','.join(sorted(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import genai pulled in: {out.stdout.strip()}"


def test_every_package_declares_its_public_api() -> None:
    for package in (
        "genai",
        "genai.store",
        "genai.tenancy",
        "genai.registry",
        "genai.models",
        "genai.serving",
        "genai.testing",
    ):
        module = __import__(package, fromlist=["__all__"])
        assert module.__all__, package
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, f"{package}.__all__ names missing objects: {missing}"


def test_packages_are_typed() -> None:
    for package in PACKAGES:
        assert (ROOT / package / "py.typed").exists(), f"{package} lacks py.typed"


def test_schema_revision_constant_is_the_migrations_head() -> None:
    from genai.store import head_revision
    from genai.store._migrate import SCHEMA_REVISION

    assert head_revision() == SCHEMA_REVISION, "bump SCHEMA_REVISION with each new migration"
