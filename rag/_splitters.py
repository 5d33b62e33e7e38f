"""Documents → chunks: structure-aware, Markdown-heading aware, sized in model tokens.

The splitter first cuts the text into small pieces at every structural boundary it knows,
each boundary with a strength: paragraph break (0), line break (1), sentence end (2),
and — only inside pieces still longer than a chunk — whitespace (3) and raw token
positions (4). It then packs consecutive pieces into chunks of at most ``chunk_size``
tokens; when a chunk is full it ends at the *strongest* boundary in its second half
(``min_fill``), so chunks end at paragraph ends rather than mid-paragraph whenever the
size allows. The next chunk starts ``chunk_overlap`` tokens back, at a piece boundary.

Markdown documents are first cut into heading sections (outside code fences); chunks never
cross a heading, and each carries its heading path (``["Install", "Linux"]``).

Every chunk is an exact slice of the document text (``text[start:end]``), so citations
can point at characters, and tokens are counted with the embedding model's tokenizer
(:mod:`rag._tokens`). With ``contextual_header`` the title and heading path embedded in
front of each chunk count against ``chunk_size`` too, so what the model reads — header and
chunk — never exceeds ``chunk_size`` tokens, hence never the model's window.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol, runtime_checkable

from genai.errors import ValidationError
from rag._tokens import TokenCounter, TokenPositions
from rag._types import Document, SplitterConfig

__all__ = ["Draft", "Splitter", "TextSplitter", "header_text", "markdown_sections"]

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n\s*")
_SENTENCE = re.compile(r"(?<=[.!?…:;])[\"'”’)\]]*\s+(?=\S)")
_SPACE = re.compile(r"\s+")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SPECIAL_TOKENS = 2  # [CLS] and [SEP] (BERT-style encoders) take part of the window


def header_text(title: str, path: Sequence[str], body: str) -> str:
    """The chunk as embedded and BM25-indexed: ``title › heading › …`` above the body."""
    if path and path[0] == title:  # a Markdown file titled by its first heading
        path = path[1:]
    head = " › ".join(part for part in (title, *path) if part)
    return f"{head}\n\n{body}" if head else body


@dataclass(frozen=True)
class Draft:
    """A chunk before it is embedded: its text, its offsets, its heading path."""

    text: str
    start: int
    end: int
    heading_path: tuple[str, ...] = ()


@runtime_checkable
class Splitter(Protocol):
    """Anything that cuts a document into drafts (plug in your own)."""

    def split(self, document: Document) -> list[Draft]: ...


class TextSplitter:
    """The default splitter (see the module docstring); thread-safe and stateless."""

    def __init__(self, config: SplitterConfig, counter: TokenCounter) -> None:
        if config.chunk_overlap >= config.chunk_size:
            raise ValidationError(
                f"chunk_overlap ({config.chunk_overlap}) must be smaller than chunk_size "
                f"({config.chunk_size}); e.g. an overlap of 10-20% of the size",
                field="chunk_overlap",
            )
        window = counter.max_seq_length
        if window is not None and config.chunk_size > window - _SPECIAL_TOKENS:
            raise ValidationError(
                f"chunk_size {config.chunk_size} exceeds the embedding model's window of "
                f"{window} tokens (less {_SPECIAL_TOKENS} special tokens), so the end of each "
                f"chunk would never be embedded: use a chunk_size of at most "
                f"{window - _SPECIAL_TOKENS}",
                field="chunk_size",
            )
        self.config = config
        self.counter = counter

    def split(self, document: Document) -> list[Draft]:
        text = document.text
        if not text.strip():
            return []
        positions = self.counter.positions(text)
        if document.markdown and self.config.markdown_headings:
            sections = markdown_sections(text)
        else:
            sections = [((), 0, len(text))]
        drafts: list[Draft] = []
        for path, start, end in sections:
            size = self._body_size(document.title, path)
            drafts.extend(self._pack(text, start, end, positions, path, size))
        return drafts

    def _body_size(self, title: str, path: tuple[str, ...]) -> int:
        """Tokens left for the chunk once its contextual header is counted (at least half)."""
        size = self.config.chunk_size
        if not self.config.contextual_header:
            return size
        header = self.counter.count(header_text(title, path, ""))
        return max(size - header, size // 2)

    # ------------------------------------------------------------------ packing

    def _pack(
        self,
        text: str,
        start: int,
        end: int,
        positions: TokenPositions,
        path: tuple[str, ...],
        size: int,
    ) -> list[Draft]:
        cuts, levels = self._pieces(text, start, end, positions, size)
        overlap = min(self.config.chunk_overlap, size // 2)
        tok = [bisect_left(positions.starts, c) for c in cuts]  # token index at each cut
        n = len(cuts) - 1  # pieces i = [cuts[i], cuts[i+1])
        drafts: list[Draft] = []
        i = 0
        while i < n:
            last = max(i, bisect_right(tok, tok[i] + size, lo=i + 1) - 2)  # furthest end piece
            if last >= n - 1:
                self._emit(drafts, text, cuts[i], cuts[n], path)
                break
            floor = tok[i] + self.config.min_fill * size
            best = last + 1  # the piece that starts the next chunk
            for k in range(last + 1, i, -1):
                if tok[k] < floor:
                    break
                if levels[k] < levels[best]:
                    best = k
            self._emit(drafts, text, cuts[i], cuts[best], path)
            nxt = best
            if overlap:
                back = bisect_left(tok, tok[best] - overlap, lo=i + 1, hi=best)
                nxt = back if back < best else best
            i = nxt
        return drafts

    @staticmethod
    def _emit(drafts: list[Draft], text: str, start: int, end: int, path: tuple[str, ...]) -> None:
        piece = text[start:end]
        stripped = piece.strip()
        if not stripped:
            return
        lead = len(piece) - len(piece.lstrip())
        start += lead
        drafts.append(Draft(stripped, start, start + len(stripped), path))

    def _pieces(
        self, text: str, start: int, end: int, positions: TokenPositions, size: int
    ) -> tuple[list[int], list[int]]:
        """Cut offsets (with ``start`` and ``end``) and the strength of each cut."""
        strength: dict[int, int] = {}
        for level, pattern in enumerate((_PARAGRAPH, _LINE, _SENTENCE)):
            for match in pattern.finditer(text, start, end):
                cut = match.end()
                if start < cut < end and strength.get(cut, 9) > level:
                    strength[cut] = level
        cuts = [start, *sorted(strength), end]
        out_cuts = [start]
        out_levels = [0]
        for a, b in pairwise(cuts):
            if positions.count(a, b) > size:
                for cut, level in self._refine(text, a, b, positions, size):
                    out_cuts.append(cut)
                    out_levels.append(level)
            out_cuts.append(b)
            out_levels.append(strength.get(b, 0))
        return out_cuts, out_levels

    def _refine(
        self, text: str, start: int, end: int, positions: TokenPositions, size: int
    ) -> Iterator[tuple[int, int]]:
        """Cuts inside a piece longer than a chunk: at whitespace, else every N tokens."""
        last = start
        for match in _SPACE.finditer(text, start, end):
            cut = match.end()
            if not start < cut < end:
                continue
            if positions.count(last, cut) > size:
                yield from _token_cuts(positions, last, cut, size)
            yield cut, 3
            last = cut
        if positions.count(last, end) > size:
            yield from _token_cuts(positions, last, end, size)


def _token_cuts(
    positions: TokenPositions, start: int, end: int, size: int
) -> Iterator[tuple[int, int]]:
    """A run of text without whitespace longer than a chunk: cut between tokens."""
    cut = positions.offset_after(start, size)
    while start < cut < end:
        yield cut, 4
        cut = positions.offset_after(cut, size)


def markdown_sections(text: str) -> list[tuple[tuple[str, ...], int, int]]:
    """``(heading path, start, end)`` of each section; headings inside code fences are text.

    A section runs from its heading line to the next heading; text before the first
    heading is a section with an empty path. Sections with nothing but a heading are
    dropped (the heading is in the path of the sections below it).
    """
    sections: list[tuple[tuple[str, ...], int, int]] = []
    stack: list[tuple[int, str]] = []
    current: tuple[str, ...] = ()
    section_start = 0
    body = False
    fence: str | None = None
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        fence_match = _FENCE.match(stripped)
        heading = None if fence is not None else _HEADING.match(stripped)
        if fence_match is not None:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
        if heading is not None:
            if body:
                sections.append((current, section_start, offset))
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading.group(2).strip()))
            current = tuple(title for _, title in stack)
            section_start, body = offset, False
        elif stripped.strip():
            body = True
        offset += len(line)
    if body:
        sections.append((current, section_start, len(text)))
    return sections
