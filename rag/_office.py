"""PDF (pypdf: one document per page, so citations name the page) and DOCX (python-docx:
headings, lists and tables converted to Markdown, so the splitter keeps the structure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genai.errors import MissingDependencyError, ValidationError
from rag._loaders import modified_time
from rag._types import Document

__all__ = ["DocxLoader", "PdfLoader"]


class PdfLoader:
    """One document per page that has text; the title is the PDF's, else the file name.

    Pages without a text layer (scans) yield nothing: OCR them first.
    """

    def load(self, path: Path) -> list[Document]:
        try:
            from pypdf import PdfReader
            from pypdf.errors import PdfReadError
        except ImportError:
            raise MissingDependencyError("pypdf", extra="rag", purpose="PDF loading") from None
        try:
            reader = PdfReader(str(path))
            if reader.is_encrypted and not reader.decrypt(""):
                raise ValidationError(
                    f"{path.name} is encrypted: decrypt it (e.g. qpdf --decrypt) and ingest again"
                )
            title = _pdf_title(reader) or path.stem
            modified = modified_time(path)
            out = []
            for number, page in enumerate(reader.pages, 1):
                text = page.extract_text() or ""
                if text.strip():
                    out.append(
                        Document(
                            text=text, source=str(path), title=title, page=number, modified=modified
                        )
                    )
            return out
        except PdfReadError as error:
            raise ValidationError(f"{path.name} is not a readable PDF: {error}") from None


def _pdf_title(reader: Any) -> str:
    try:
        meta = reader.metadata
        return str(meta.title).strip() if meta is not None and meta.title else ""
    except Exception:  # broken metadata must not lose the pages
        return ""


class DocxLoader:
    """A Word document as Markdown: ``Heading N`` styles become ``#`` headings, list
    paragraphs ``-`` items, table rows ``a | b`` lines. The title is the document's core
    title, else its first Title/Heading 1 paragraph, else the file name."""

    def load(self, path: Path) -> list[Document]:
        try:
            import docx
            from docx.table import Table
        except ImportError:
            raise MissingDependencyError(
                "python-docx", extra="rag", purpose="DOCX loading"
            ) from None
        try:
            document = docx.Document(str(path))
        except Exception as error:  # python-docx raises zip/xml/key errors on bad files
            raise ValidationError(f"{path.name} is not a readable .docx file: {error}") from None
        title = (document.core_properties.title or "").strip()
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [c.text.strip() for c in row.cells]
                    lines.append(" | ".join(cells))
                lines.append("")
                continue
            text = block.text.strip()
            if not text:
                continue
            style = (block.style.name if block.style is not None else "") or ""
            level = _heading_level(style)
            if level:
                title = title or text
                lines.extend([f"{'#' * level} {text}", ""])
            elif style.startswith("List"):
                lines.append(f"- {text}")
            else:
                lines.extend([text, ""])
        return [
            Document(
                text="\n".join(lines).strip(),
                source=str(path),
                title=title or path.stem,
                modified=modified_time(path),
                markdown=True,
            )
        ]


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    if style.startswith("Heading "):
        tail = style.removeprefix("Heading ").strip()
        if tail.isdigit():
            return min(int(tail), 6)
    return 0
