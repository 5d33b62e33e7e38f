"""What loaders produce, what retrieval returns, and what an ingestion reports.

Metadata is typed (source, title, page, heading path, modified time, record id) rather
than a free dict, so citations and filters mean the same thing for every loader; loaders
put anything else in ``extra`` (scalars only: that is what every vector store can filter).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AnswerTrace",
    "Chunk",
    "ChunkMetadata",
    "Document",
    "FilterValue",
    "Filters",
    "IngestReport",
    "KnowledgeBaseInfo",
    "Scalar",
    "SearchMode",
    "SplitterConfig",
]

#: A metadata value every backend can store and filter on.
Scalar = str | int | float | bool
#: ``value`` (equality), a list (any of), or an operator map: ``{"$gte": 2}``,
#: ``{"$in": [...]}``, ``{"$ne": "x"}`` … (``$eq $ne $gt $gte $lt $lte $in $nin``).
FilterValue = Scalar | list[Scalar] | dict[str, Scalar | list[Scalar]]
#: Metadata filters: every key must match (AND).
Filters = dict[str, FilterValue]


class SearchMode(StrEnum):
    """How :meth:`rag.KnowledgeBase.retrieve` ranks chunks."""

    DENSE = "dense"  # cosine similarity of embeddings
    SPARSE = "sparse"  # BM25 over the same chunks
    HYBRID = "hybrid"  # both, fused


class Document(BaseModel):
    """A unit of text a loader produced: a file, a page of a PDF, a record of a JSONL file.

    ``markdown`` tells the splitter to follow ``#`` headings (Markdown files, and HTML and
    DOCX, which loaders convert to Markdown so their headings survive).
    """

    model_config = ConfigDict(frozen=True)

    text: str
    source: str
    title: str = ""
    page: int | None = None
    record: str | None = None
    modified: datetime | None = None
    markdown: bool = False
    extra: dict[str, Scalar] = Field(default_factory=dict)


class ChunkMetadata(BaseModel):
    """Where a chunk comes from: enough to cite it and to filter on it."""

    source: str
    title: str = ""
    page: int | None = None
    heading_path: list[str] = Field(default_factory=list)
    modified: datetime | None = None
    record: str | None = None
    chunk_index: int = 0
    start: int = 0  # character offsets of the chunk in its document's text
    end: int = 0
    extra: dict[str, Scalar] = Field(default_factory=dict)

    @property
    def citation(self) -> str:
        """``source`` with its record, page and headings, e.g. ``guide.pdf p.3 › Setup``."""
        parts = [self.source + (f"#{self.record}" if self.record else "")]
        if self.page is not None:
            parts.append(f"p.{self.page}")
        if self.heading_path:
            parts.append(" › ".join(self.heading_path))
        return " ".join(parts)


class Chunk(BaseModel):
    """A retrieved chunk: its stable id, its text, its score in the mode that found it."""

    id: str
    text: str
    score: float
    metadata: ChunkMetadata


class SplitterConfig(BaseModel):
    """How documents become chunks; fixed when a knowledge base is created.

    Sizes are tokens of the embedding model's tokenizer. ``contextual_header`` embeds (and
    BM25-indexes) the title and heading path in front of each chunk, which lets a chunk deep
    in a section still match its topic; the header counts against ``chunk_size``, so what
    is embedded never exceeds it (nor, therefore, the model's window).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    chunk_size: int = Field(default=200, ge=16, le=8192)
    chunk_overlap: int = Field(default=32, ge=0)
    min_fill: float = Field(default=0.5, gt=0.0, le=1.0)
    markdown_headings: bool = True
    contextual_header: bool = True


class KnowledgeBaseInfo(BaseModel):
    """A knowledge base as :meth:`rag.KnowledgeBases.list` and ``genai kb show`` see it."""

    project: str
    name: str
    description: str
    embedding_model: str
    dimension: int
    splitter: SplitterConfig
    reranker: str | None
    redact: bool
    collection: str
    version: int | None  # the registry dataset version of the latest ingestion
    dataset: str  # the registry dataset holding the ingestion manifests
    documents: int
    chunks: int
    created_at: datetime
    created_by: str
    updated_at: datetime | None


class IngestReport(BaseModel):
    """What one ingestion did. ``version`` is the knowledge base's dataset version after it."""

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)  # source -> why
    chunks_written: int = 0
    chunks_embedded: int = 0  # fewer than written when identical chunks reused a vector
    chunks_deleted: int = 0
    seconds: float = 0.0
    version: int | None = None
    status: Literal["ok", "partial"] = "ok"

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


class AnswerTrace(BaseModel):
    """What one knowledge-bot answer was built from (:meth:`rag.KnowledgeBases.answers`)."""

    request_id: str
    ts: datetime
    deployment: str
    kb_name: str
    kb_version: int | None
    prompt_version: str
    chunks: list[dict[str, Any]]  # every chunk given to the LLM: id, source, score
    cited: list[int]  # the [n] marks of the answer (1-based positions in ``chunks``)
