"""Files → documents: one loader per format, picked by suffix, and the directory walk.

Each loader reads one file and returns its documents (a whole file, a PDF page, a JSONL
record, a CSV row). HTML and DOCX are converted to Markdown so that their headings reach
the heading-aware splitter. Any LlamaIndex reader can be plugged in as a loader through
:class:`LlamaIndexLoader`; :func:`register_loader` adds a format, and so does another
package through the ``genai.loaders`` entry point group (:data:`LOADERS`).
"""

from __future__ import annotations

import csv
import fnmatch
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from genai.errors import MissingDependencyError, ValidationError
from genai.plugins import Registry
from rag._types import Document, Scalar

__all__ = [
    "DEFAULT_EXCLUDE",
    "LOADERS",
    "CsvLoader",
    "HtmlLoader",
    "JsonLoader",
    "LlamaIndexLoader",
    "Loader",
    "MarkdownLoader",
    "TextLoader",
    "collect_files",
    "load_file",
    "loader_for",
    "register_loader",
    "supported_suffixes",
]

#: Never walked into: hidden files and folders, caches, virtual environments.
DEFAULT_EXCLUDE: tuple[str, ...] = (".*", "__pycache__", "node_modules", ".venv", "*.egg-info")

_TEXT_KEYS = ("text", "content", "body", "page_content", "abstract")
_TITLE_KEYS = ("title", "name", "subject", "question")
_ID_KEYS = ("_id", "id", "doc_id", "uuid", "key")
_META_MAX = 256  # longer field values are text, not metadata
_MD_TITLE = re.compile(r"^ {0,3}#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


@runtime_checkable
class Loader(Protocol):
    """Reads one file into documents (raise :class:`~genai.errors.ValidationError` on bad
    input; it is reported per file and the ingestion goes on)."""

    def load(self, path: Path) -> list[Document]: ...


def modified_time(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def read_text(path: Path) -> str:
    """UTF-8 (with or without BOM); undecodable bytes become U+FFFD rather than failing."""
    return path.read_bytes().decode("utf-8-sig", errors="replace")


class TextLoader:
    """Plain text: the whole file; the title is the file name without its suffix."""

    def load(self, path: Path) -> list[Document]:
        return [
            Document(
                text=read_text(path),
                source=str(path),
                title=path.stem,
                modified=modified_time(path),
            )
        ]


class MarkdownLoader:
    """Markdown: the whole file; the title is the first ``# `` heading, else the file name."""

    def load(self, path: Path) -> list[Document]:
        text = read_text(path)
        match = _MD_TITLE.search(text)
        return [
            Document(
                text=text,
                source=str(path),
                title=match.group(1).strip() if match else path.stem,
                modified=modified_time(path),
                markdown=True,
            )
        ]


class HtmlLoader:
    """HTML → Markdown-like text (headings kept as ``#``), scripts and styles dropped."""

    def load(self, path: Path) -> list[Document]:
        title, text = html_to_markdown(read_text(path))
        return [
            Document(
                text=text,
                source=str(path),
                title=title or path.stem,
                modified=modified_time(path),
                markdown=True,
            )
        ]


def html_to_markdown(html: str) -> tuple[str, str]:
    """``(title, text)`` of an HTML page, with ``#`` headings and ``-`` list items."""
    try:
        from bs4 import BeautifulSoup
        from bs4.element import NavigableString
    except ImportError:
        raise MissingDependencyError(
            "beautifulsoup4", extra="rag", purpose="HTML loading"
        ) from None
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["head", "title", "script", "style", "noscript", "template", "svg"]):
        tag.decompose()
    for node in list(soup.find_all(string=True)):
        if node.find_parent("pre") is None:
            node.replace_with(NavigableString(re.sub(r"\s+", " ", str(node))))
    for heading in soup.find_all(re.compile(r"^h[1-6]$")):
        label = heading.get_text(" ", strip=True)
        title = title or label
        heading.replace_with(f"\n\n{'#' * int(heading.name[1])} {label}\n\n")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for item in soup.find_all("li"):
        item.insert_before("\n- ")
    for cell in soup.find_all(["td", "th"]):
        cell.insert_after(" | ")
    blocks = ["p", "div", "section", "article", "tr", "table", "ul", "ol", "pre", "blockquote"]
    for block in soup.find_all(blocks):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    text = soup.get_text()
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n[ \t]+", "\n", text)
    return title, re.sub(r"\n{3,}", "\n\n", text).strip()


class JsonLoader:
    """``.json`` (a list of objects, or one object) and ``.jsonl`` (one object per line).

    Each object is a document: its text is the first of ``text_fields`` present (else
    every field as ``key: value`` lines), its title the first of ``title_fields``, its
    record id the first of ``id_fields`` (else its position); other short scalar fields
    become filterable metadata.
    """

    def __init__(
        self,
        *,
        text_fields: Sequence[str] = _TEXT_KEYS,
        title_fields: Sequence[str] = _TITLE_KEYS,
        id_fields: Sequence[str] = _ID_KEYS,
    ) -> None:
        self._fields = (tuple(text_fields), tuple(title_fields), tuple(id_fields))

    def load(self, path: Path) -> list[Document]:
        modified = modified_time(path)
        return [
            self.record(row, path, str(position), modified)
            for position, row in enumerate(_json_rows(path))
        ]

    def record(
        self, row: Mapping[str, Any], path: Path, position: str, modified: datetime
    ) -> Document:
        text_keys, title_keys, id_keys = self._fields
        text_key = next((k for k in text_keys if isinstance(row.get(k), str)), None)
        title_key = next((k for k in title_keys if isinstance(row.get(k), str)), None)
        id_key = next((k for k in id_keys if row.get(k) not in (None, "")), None)
        if text_key is not None:
            text = str(row[text_key])
        else:
            text = "\n".join(f"{k}: {_flat(v)}" for k, v in row.items() if k != id_key)
        extra: dict[str, Scalar] = {}
        for key, value in row.items():
            if not key or key in (text_key, title_key, id_key) or not isinstance(value, Scalar):
                continue
            if not isinstance(value, str) or len(value) <= _META_MAX:
                extra[str(key)] = value
        return Document(
            text=text,
            source=str(path),
            title=str(row[title_key]) if title_key else "",
            record=str(row[id_key]) if id_key else position,
            modified=modified,
            extra=extra,
        )


def _flat(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _json_rows(path: Path) -> Iterator[Mapping[str, Any]]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValidationError(
                    f"{path.name} line {number} is not JSON ({error.msg}): fix or remove it"
                ) from None
            yield _object(row, f"{path.name} line {number}")
        return
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise ValidationError(
            f"{path.name} is not JSON ({error.msg} at line {error.lineno}): fix it"
        ) from None
    items = data if isinstance(data, list) else [data]
    for index, row in enumerate(items):
        yield _object(row, f"{path.name} item {index}")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{where} is not a JSON object: each record must be {{...}}")
    return value


class CsvLoader(JsonLoader):
    """One document per row, read like a JSON record (header row = field names)."""

    def load(self, path: Path) -> list[Document]:
        modified = modified_time(path)
        text = read_text(path)
        rows = csv.DictReader(text.splitlines())
        return [
            self.record({k: v for k, v in row.items() if k}, path, str(i), modified)
            for i, row in enumerate(rows)
        ]


class LlamaIndexLoader:
    """Any LlamaIndex reader (``llama_index.core.readers.base.BaseReader``) as a loader.

    The reader's ``load_data(file=path)`` is called (``load_data(path)`` for readers that
    take the path positionally); each LlamaIndex document becomes a document, with
    ``page_label``/``title`` metadata mapped to page and title and other scalars kept.
    """

    def __init__(self, reader: Any, *, markdown: bool = False) -> None:
        if not callable(getattr(reader, "load_data", None)):
            raise ValidationError(f"{reader!r} is not a LlamaIndex reader: it has no load_data")
        self._reader = reader
        self._markdown = markdown

    def load(self, path: Path) -> list[Document]:
        try:
            documents = self._reader.load_data(file=path)
        except TypeError:
            documents = self._reader.load_data(path)
        out = []
        modified = modified_time(path)
        for index, item in enumerate(documents):
            meta = dict(getattr(item, "metadata", {}) or {})
            page = meta.pop("page_label", None) or meta.pop("page", None)
            title = meta.pop("title", None) or meta.pop("file_name", None) or path.stem
            out.append(
                Document(
                    text=item.get_content() if hasattr(item, "get_content") else str(item.text),
                    source=str(path),
                    title=str(title),
                    page=int(page) if str(page or "").isdigit() else None,
                    record=None if len(documents) == 1 or page else str(index),
                    modified=modified,
                    markdown=self._markdown,
                    extra={
                        str(k): v
                        for k, v in meta.items()
                        if isinstance(v, Scalar) and len(str(v)) <= _META_MAX
                    },
                )
            )
        return out


#: Loaders by file suffix (lower case, with its dot); other packages add formats under the
#: ``genai.loaders`` entry point group, named by suffix (``".rst" = "pkg.mod:RstLoader"``:
#: a factory called with no arguments). See :mod:`genai.plugins`.
LOADERS: Registry[Loader] = Registry(
    "document loader",
    group="genai.loaders",
    builtins={
        ".txt": TextLoader,
        ".text": TextLoader,
        ".md": MarkdownLoader,
        ".markdown": MarkdownLoader,
        ".html": HtmlLoader,
        ".htm": HtmlLoader,
        ".json": JsonLoader,
        ".jsonl": JsonLoader,
        ".ndjson": JsonLoader,
        ".csv": CsvLoader,
        ".pdf": "rag._office:PdfLoader",
        ".docx": "rag._office:DocxLoader",
    },
)


def register_loader(suffix: str, loader: Loader) -> None:
    """Load files ending in ``suffix`` (``".rst"``) with ``loader``; replaces any other."""
    if not suffix.startswith("."):
        raise ValidationError(f"a suffix starts with a dot: {suffix!r} → '.{suffix}'")
    LOADERS.register(suffix.lower(), lambda: loader)


def supported_suffixes() -> list[str]:
    return LOADERS.names()


def loader_for(path: Path, loaders: Mapping[str, Loader] | None = None) -> Loader | None:
    suffix = path.suffix.lower()
    found = (loaders or {}).get(suffix)
    if found is None and suffix in LOADERS:
        found = LOADERS.create(suffix)
    return found


def load_file(path: Path, loaders: Mapping[str, Loader] | None = None) -> list[Document]:
    """The documents of one file, with the loader its suffix names."""
    loader = loader_for(path, loaders)
    if loader is None:
        raise ValidationError(
            f"no loader for {path.name}: supported suffixes are "
            f"{', '.join(supported_suffixes())} (register_loader adds one)"
        )
    return loader.load(path)


def collect_files(
    paths: Iterable[str | Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    loaders: Mapping[str, Loader] | None = None,
) -> tuple[list[Path], list[Path]]:
    """``(files, roots)``: the files to ingest, sorted, and the resolved paths asked for.

    A file named directly is always taken (it must have a loader). A directory is walked
    recursively: a file is taken when a loader knows its suffix and, if ``include`` globs
    are given, its path relative to the directory matches one; anything matching an
    ``exclude`` glob (by name or relative path) is skipped, folders included.
    """
    files: set[Path] = set()
    roots: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise ValidationError(f"{raw} does not exist: give files or directories to ingest")
        roots.append(path)
        if path.is_file():
            if loader_for(path, loaders) is None:
                load_file(path, loaders)  # raises the "no loader" error
            files.add(path)
            continue
        files.update(_walk(path, include, exclude, loaders))
    return sorted(files), roots


def _walk(
    root: Path, include: Sequence[str], exclude: Sequence[str], loaders: Mapping[str, Loader] | None
) -> Iterator[Path]:
    def skipped(relative: str, name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in exclude)

    stack = [root]
    while stack:
        folder = stack.pop()
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(root).as_posix()
            if skipped(relative, entry.name):
                continue
            if entry.is_dir():
                stack.append(entry)
            elif entry.is_file() and loader_for(entry, loaders) is not None:
                if include and not any(fnmatch.fnmatch(relative, p) for p in include):
                    continue
                yield entry
