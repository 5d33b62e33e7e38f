"""Framework integrations: a LangChain retriever, a LlamaIndex retriever, LlamaIndex
readers as loaders, and a real (tiny, locally built) cross-encoder as the reranker."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from rag import (
    KnowledgeBases,
    LlamaIndexLoader,
    SplitterConfig,
    langchain_retriever,
    llama_index_retriever,
)

PROJECT = "integ"


@pytest.fixture
def kbs(platform: Any, embedder: Any) -> KnowledgeBases:
    admin = platform()
    admin.projects.create(PROJECT)
    return KnowledgeBases(admin, embedder=embedder)


@pytest.fixture
def kb(kbs: KnowledgeBases, tmp_path: Path) -> Any:
    (tmp_path / "pets.md").write_text(
        "# Pets\n\n## Cats\n\nCats sleep sixteen hours a day.\n\n"
        "## Dogs\n\nDogs need a walk twice a day.\n"
    )
    (tmp_path / "garden.txt").write_text("Tomatoes need full sun and daily watering.\n")
    handle = kbs.create(PROJECT, "notes", splitter=SplitterConfig(chunk_size=48, chunk_overlap=0))
    handle.ingest([tmp_path])
    return handle


def test_langchain_retriever(kb: Any) -> None:
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    retriever = langchain_retriever(kb, k=2, mode="hybrid")
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("How long do cats sleep?")
    assert isinstance(docs[0], Document) and len(docs) == 2
    assert "sixteen hours" in docs[0].page_content
    assert docs[0].metadata["heading_path"] == ["Pets", "Cats"]
    assert docs[0].metadata["source"].endswith("pets.md") and docs[0].id
    filtered = asyncio.run(langchain_retriever(kb, k=3, filters={"title": "garden"}).ainvoke("sun"))
    assert filtered and all(d.metadata["source"].endswith("garden.txt") for d in filtered)


def test_llama_index_retriever(kb: Any) -> None:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore

    retriever = llama_index_retriever(kb, k=2, mode="dense")
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve("How often should a dog be walked?")
    assert isinstance(nodes[0], NodeWithScore) and len(nodes) == 2
    assert "twice a day" in nodes[0].node.get_content()
    assert nodes[0].node.metadata["heading_path"] == "Pets > Dogs"
    first, second = nodes[0].score, nodes[1].score
    assert first is not None and second is not None and first >= second


def test_a_llama_index_reader_as_a_loader(kbs: KnowledgeBases, tmp_path: Path) -> None:
    from llama_index.core import Document as LIDocument
    from llama_index.core.readers.base import BaseReader

    class RstReader(BaseReader):
        """One LlamaIndex document per ``====``-underlined section."""

        def load_data(
            self, file: Path, extra_info: dict[str, Any] | None = None
        ) -> list[LIDocument]:
            sections = Path(file).read_text().split("\n\n")
            return [
                LIDocument(text=s.strip(), metadata={"page_label": str(i + 1), "lang": "en"})
                for i, s in enumerate(sections)
                if s.strip()
            ]

    (tmp_path / "guide.rst").write_text("Setup\n=====\nInstall it.\n\nUsage\n=====\nRun it.\n")
    loader = LlamaIndexLoader(RstReader())
    docs = loader.load(tmp_path / "guide.rst")
    assert [d.page for d in docs] == [1, 2] and docs[0].extra == {"lang": "en"}
    kb = kbs.create(PROJECT, "rst")
    report = kb.ingest([tmp_path], loaders={".rst": loader})
    assert [Path(s).name for s in report.added] == ["guide.rst"]
    hit = kb.retrieve("how do I run it", k=1, filters={"page": 2})[0]
    assert "Run it" in hit.text and hit.metadata.page == 2


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised one-layer BERT cross-encoder with the bundled tokenizer:
    real weights on disk that sentence-transformers loads, no download."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from rag._tokens import model_directory

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cross-encoder")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,  # type: ignore[call-arg]  # a run-time kwarg the typed __init__ omits
    )
    BertForSequenceClassification(config).save_pretrained(path)
    source = model_directory("all-MiniLM-L6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, path / name)
    return path


def test_a_cross_encoder_reranks(
    kbs: KnowledgeBases, tiny_cross_encoder: Path, tmp_path: Path
) -> None:
    from rag import CrossEncoderReranker

    (tmp_path / "facts.md").write_text(
        "\n\n".join(f"Fact {i}: item {i} weighs {i} kilograms." for i in range(8))
    )
    kb = kbs.create(
        PROJECT,
        "reranked",
        splitter=SplitterConfig(chunk_size=16, chunk_overlap=0),
        reranker=str(tiny_cross_encoder),
    )
    kb.ingest([tmp_path])
    candidates = kb.retrieve("how heavy is item 3?", k=6)
    reranked = kb.retrieve("how heavy is item 3?", k=3, rerank=True)
    assert len(reranked) == 3 and {c.id for c in reranked} <= {c.id for c in candidates} | {
        c.id for c in kb.retrieve("how heavy is item 3?", k=50)
    }
    scores = [c.score for c in reranked]
    assert scores == sorted(scores, reverse=True)
    direct = CrossEncoderReranker(tiny_cross_encoder).rerank("how heavy?", candidates, 2)
    assert len(direct) == 2
