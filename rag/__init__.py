"""RAG: knowledge bases of AI Projects — ingestion with incremental sync, hybrid retrieval.

    from rag import KnowledgeBases
    kbs = KnowledgeBases(client)                       # client = genai.connect(...)
    kb = kbs.create("payments-bot", "docs")            # one Chroma collection, never shared
    report = kb.ingest(["./docs"], progress=True)      # add / update / delete / skip
    chunks = kb.retrieve("how do refunds work?", k=5)  # hybrid: dense + BM25, fused
    answer = kb.ask("how do refunds work?")            # quotes chunks, cites them [n]
    kb.version                                         # registry dataset version → cache key

Loaders (.txt .md .html .pdf .docx .json .jsonl .csv, directories, any LlamaIndex
reader), a structure- and heading-aware splitter sized in the embedding model's tokens,
dense / sparse / hybrid retrieval with metadata filters, MMR and rerankers, and
LangChain / LlamaIndex retrievers (:func:`langchain_retriever`,
:func:`llama_index_retriever`). It imports ``genai`` only; chromadb, torch, bm25s and the
frameworks load when first used.

Loaders are found by file suffix in :data:`LOADERS`: :func:`register_loader` adds one, and
another package adds one through the ``genai.loaders`` entry point group, named by suffix
(``".rst" = "my_package.loaders:RstLoader"``; see :mod:`genai.plugins`).
"""

from __future__ import annotations

from typing import Any

from rag._chat import (
    NOTHING_FOUND,
    ChatModel,
    ChatOptions,
    ChatPlan,
    ChatPrompt,
    KnowledgeChat,
)
from rag._filters import OPERATORS
from rag._handle import Answer, Citation, KnowledgeBase
from rag._ingest import Redact
from rag._kb import KnowledgeBases
from rag._loaders import (
    DEFAULT_EXCLUDE,
    LOADERS,
    CsvLoader,
    HtmlLoader,
    JsonLoader,
    LlamaIndexLoader,
    Loader,
    MarkdownLoader,
    TextLoader,
    collect_files,
    load_file,
    register_loader,
    supported_suffixes,
)
from rag._office import DocxLoader, PdfLoader
from rag._ranking import (
    CrossEncoderReranker,
    Fusion,
    Reranker,
    mmr,
    reciprocal_rank_fusion,
    weighted_fusion,
)
from rag._retrieve import DEFAULTS, RetrievalDefaults
from rag._sparse import SparseCache
from rag._splitters import Draft, Splitter, TextSplitter, markdown_sections
from rag._tokens import TokenCounter
from rag._types import (
    AnswerTrace,
    Chunk,
    ChunkMetadata,
    Document,
    Filters,
    FilterValue,
    IngestReport,
    KnowledgeBaseInfo,
    Scalar,
    SearchMode,
    SplitterConfig,
)

__all__ = [
    "DEFAULTS",
    "DEFAULT_EXCLUDE",
    "LOADERS",
    "NOTHING_FOUND",
    "OPERATORS",
    "Answer",
    "AnswerTrace",
    "ChatModel",
    "ChatOptions",
    "ChatPlan",
    "ChatPrompt",
    "Chunk",
    "ChunkMetadata",
    "Citation",
    "CrossEncoderReranker",
    "CsvLoader",
    "Document",
    "DocxLoader",
    "Draft",
    "FilterValue",
    "Filters",
    "Fusion",
    "HtmlLoader",
    "IngestReport",
    "JsonLoader",
    "KnowledgeBase",
    "KnowledgeBaseInfo",
    "KnowledgeBases",
    "KnowledgeChat",
    "LlamaIndexLoader",
    "Loader",
    "MarkdownLoader",
    "PdfLoader",
    "Redact",
    "Reranker",
    "RetrievalDefaults",
    "Scalar",
    "SearchMode",
    "SparseCache",
    "Splitter",
    "SplitterConfig",
    "TextLoader",
    "TextSplitter",
    "TokenCounter",
    "collect_files",
    "langchain_retriever",
    "llama_index_retriever",
    "load_file",
    "markdown_sections",
    "mmr",
    "reciprocal_rank_fusion",
    "register_loader",
    "supported_suffixes",
    "weighted_fusion",
]


def langchain_retriever(kb: KnowledgeBase, **options: Any) -> Any:
    """A LangChain ``BaseRetriever`` over ``kb`` (options: k, filters, mode, mmr, rerank)."""
    from rag._langchain import KnowledgeBaseRetriever

    return KnowledgeBaseRetriever(kb=kb, **options)


def llama_index_retriever(kb: KnowledgeBase, **options: Any) -> Any:
    """A LlamaIndex ``BaseRetriever`` over ``kb`` (options: k, filters, mode, mmr, rerank)."""
    from rag._llamaindex import KnowledgeBaseLlamaRetriever

    return KnowledgeBaseLlamaRetriever(kb, **options)
