"""The plug-in registry: factories by name, by reference and by entry point of an installed
distribution; each family of backends (LLMs, embedders, vector stores, loaders) uses it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from genai.errors import ConfigError, UnknownBackendError, UsageError, ValidationError
from genai.models import (
    EMBEDDERS,
    LLM_BACKENDS,
    backend_names,
    create_backend,
    create_embedder,
    register_backend,
)
from genai.plugins import Registry
from genai.settings import Settings
from genai.vectors import VECTOR_STORES, InMemoryVectorStore, create_vector_store
from rag import LOADERS, Document, load_file, supported_suffixes


class Gadget:
    def __init__(self, *, size: int = 1) -> None:
        self.size = size


Install = Callable[[str, dict[str, str], str], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Installs a distribution into a new sys.path entry: its entry points (group → lines
    ``name = module:attribute``) and one module of source code."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def installed(module: str, groups: dict[str, str], source: str) -> None:
        dist = site / f"{module}_dist-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {module}-dist\nVersion: 1.0\n"
        )
        (dist / "entry_points.txt").write_text(
            "".join(f"[{group}]\n{lines}\n" for group, lines in groups.items())
        )
        (site / f"{module}.py").write_text(source)
        modules.append(module)

    yield installed
    for module in modules:
        sys.modules.pop(module, None)


# ---------------------------------------------------------------- the registry


def test_a_registered_factory_is_built_with_its_options() -> None:
    gadgets: Registry[Gadget] = Registry("gadget")
    gadgets.register("plain", Gadget)
    gadgets.register("big", lambda **options: Gadget(size=10 * options.get("size", 1)))
    assert gadgets.names() == ["big", "plain"]
    assert "plain" in gadgets and "other" not in gadgets
    assert gadgets.create("plain", size=3).size == 3
    assert gadgets.create("big", size=2).size == 20
    built = [gadgets.create("plain"), gadgets.create("plain")]
    assert built[0] is not built[1]  # a new object every time


def test_a_factory_by_reference_is_imported_on_first_use() -> None:
    gadgets: Registry[Any] = Registry("gadget", builtins={"ordered": "collections:OrderedDict"})
    assert gadgets.create("ordered", a=1) == {"a": 1}
    gadgets.register("nested", "genai.plugins:Registry.names")  # attributes may be dotted
    assert gadgets.factory("nested") is Registry.names


def test_an_unknown_name_lists_the_known_ones() -> None:
    gadgets: Registry[Gadget] = Registry("gadget", builtins={"plain": Gadget, "big": Gadget})
    with pytest.raises(UnknownBackendError) as caught:
        gadgets.create("huge")
    assert isinstance(caught.value, UsageError)
    assert caught.value.name == "huge"
    assert caught.value.known == ["big", "plain"]
    assert "unknown gadget backend 'huge'; known backends: big, plain" in str(caught.value)


def test_bad_registrations_are_refused_when_made() -> None:
    gadgets: Registry[Gadget] = Registry("gadget")
    with pytest.raises(ValidationError, match="module:attribute"):
        gadgets.register("x", "no_colon_here")
    with pytest.raises(ValidationError, match="needs a name"):
        gadgets.register(" ", Gadget)
    with pytest.raises(ValidationError, match="callable"):
        gadgets.register("x", 42)  # type: ignore[arg-type]
    gadgets.register("missing", "genai.plugins:NoSuchThing")
    with pytest.raises(ConfigError, match="names nothing that exists"):
        gadgets.create("missing")


def test_unregister_forgets_a_name() -> None:
    gadgets: Registry[Gadget] = Registry("gadget", builtins={"plain": Gadget})
    gadgets.unregister("plain")
    gadgets.unregister("never-there")
    assert gadgets.names() == []


# ---------------------------------------------------------------- entry points


def test_installed_entry_points_join_their_family(install: Install) -> None:
    install(
        "shiny_gadgets",
        {"genai_test.gadgets": "shiny = shiny_gadgets:Shiny\nplain = shiny_gadgets:Shiny"},
        "class Shiny:\n    def __init__(self, *, size=1):\n        self.size = size * 100\n",
    )
    gadgets: Registry[Any] = Registry(
        "gadget", group="genai_test.gadgets", builtins={"plain": Gadget}
    )
    assert gadgets.names() == ["plain", "shiny"]
    assert "shiny_gadgets" not in sys.modules  # listing imports nothing
    assert gadgets.create("shiny", size=2).size == 200
    assert type(gadgets.create("plain")) is Gadget  # a name registered in code wins


def test_entry_points_are_read_once_until_discovered_again(install: Install) -> None:
    gadgets: Registry[Any] = Registry("gadget", group="genai_test.later")
    assert gadgets.names() == []
    install("later_gadgets", {"genai_test.later": "late = later_gadgets:Late"}, "Late = dict\n")
    assert gadgets.names() == []
    gadgets.discover()
    assert gadgets.names() == ["late"]
    assert gadgets.create("late", a=1) == {"a": 1}


def test_a_third_party_llm_backend_installs_by_entry_point(install: Install) -> None:
    install(
        "acme_llm",
        {"genai.llm_backends": "acme = acme_llm:AcmeBackend"},
        "class AcmeBackend:\n"
        "    def __init__(self, *, model_id):\n"
        "        self.model_id = model_id\n",
    )
    LLM_BACKENDS.discover()
    try:
        assert "acme" in backend_names()
        assert create_backend("acme", model_id="acme-1").model_id == "acme-1"
    finally:
        LLM_BACKENDS.unregister("acme")
    with pytest.raises(UnknownBackendError, match=r"known backends: .*extractive"):
        create_backend("acme")


def test_register_backend_still_adds_one_in_code() -> None:
    register_backend("third-party", "collections:OrderedDict")
    try:
        assert "third-party" in backend_names()
        made: object = create_backend("third-party", x=1)  # whatever the entry names
        assert made == {"x": 1}
    finally:
        LLM_BACKENDS.unregister("third-party")


# ---------------------------------------------------------------- the other families


class TinyEmbedder:
    def __init__(self, *, model: str, dimension: int = 2) -> None:
        self.model_name = model
        self.dimension = dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * (self.dimension - 1) for _ in texts]


def test_embedders_are_found_by_name(tmp_path: Path) -> None:
    assert "sentence-transformers" in EMBEDDERS.names()
    EMBEDDERS.register("tiny", TinyEmbedder)
    try:
        settings = Settings(home=tmp_path, embedding_model="tiny-model")
        built = create_embedder(settings, backend="tiny", dimension=3)
        assert isinstance(built, TinyEmbedder)
        assert (built.model_name, built.dimension) == ("tiny-model", 3)
    finally:
        EMBEDDERS.unregister("tiny")
    with pytest.raises(UnknownBackendError, match="sentence-transformers"):
        create_embedder(Settings(home=tmp_path), backend="tiny")


def test_vector_stores_are_found_by_name(tmp_path: Path) -> None:
    assert VECTOR_STORES.names() == ["chroma", "memory"]
    seen: list[Settings] = []

    def remembering(*, settings: Settings) -> InMemoryVectorStore:
        seen.append(settings)
        return InMemoryVectorStore()

    VECTOR_STORES.register("remembering", remembering)
    try:
        settings = Settings(home=tmp_path)
        assert isinstance(create_vector_store(settings, backend="remembering"), InMemoryVectorStore)
        assert seen == [settings]
    finally:
        VECTOR_STORES.unregister("remembering")


def test_loaders_install_by_entry_point_named_by_suffix(install: Install, tmp_path: Path) -> None:
    install(
        "gadget_loader",
        {"genai.loaders": ".gadget = gadget_loader:GadgetLoader"},
        "from rag import Document\n"
        "class GadgetLoader:\n"
        "    def load(self, path):\n"
        "        return [Document(text=path.read_text()[::-1], source=str(path))]\n",
    )
    LOADERS.discover()
    try:
        assert ".gadget" in supported_suffixes()
        (tmp_path / "a.gadget").write_text("olleh")
        documents = load_file(tmp_path / "a.gadget")
        assert [d.text for d in documents] == ["hello"]
        assert isinstance(documents[0], Document)
    finally:
        LOADERS.unregister(".gadget")
    with pytest.raises(ValidationError, match=r"no loader for a\.gadget: supported suffixes"):
        load_file(tmp_path / "a.gadget")
