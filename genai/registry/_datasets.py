"""Datasets: content-addressed versions with rows, schema, stats and splits.

Whatever the input (a .jsonl, .json or .csv file, or a list of records), its rows are
written as canonical JSON lines (sorted keys); the SHA-256 of those bytes is the dataset's
identity, so the same rows are the same version however they were formatted. Splits are
assigned by hashing each row, so they are stable across re-registrations and machines.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from genai.errors import ConflictError, ValidationError
from genai.registry._refs import add_edge, aliases_of
from genai.registry._types import DatasetVersion
from genai.registry._versioned import VersionedAPI, WriteScope
from genai.store import schema as t

__all__ = ["Datasets", "read_rows"]

_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}
_DISTINCT_CAP = 10_000


class Datasets(VersionedAPI[DatasetVersion]):
    kind = "dataset"

    def register(
        self,
        project: str,
        name: str,
        source: str | Path | Sequence[Mapping[str, Any]],
        *,
        splits: Mapping[str, float] | None = None,
        split_column: str | None = None,
        seed: int = 0,
        description: str = "",
        derived_from: str | None = None,
    ) -> DatasetVersion:
        """Register rows as a dataset version (or return the version that has them).

        ``splits`` assigns each row to a split by hashing it (e.g. ``{"train": 0.9,
        "test": 0.1}``); ``split_column`` takes the split from a column instead.
        ``derived_from`` names the dataset of this project these rows were made from (e.g.
        ``dataset:train@3``, cleaned or redacted): a lineage edge parent → this version,
        relation "derived" (added once, also when the rows were registered before).
        """
        if splits is not None and split_column is not None:
            raise ValidationError("give splits or split_column, not both", field="splits")
        ratios = _check_ratios(splits) if splits is not None else None
        self._precheck(project)
        rows, fmt = _rows(source)
        with _Canonical() as canon:
            profile = _Profile()
            counts: dict[str, int] = {}
            for row in rows:
                line = canon.add(row)
                profile.add(row)
                split = _split_of(row, line, ratios, split_column, seed)
                if split is not None:
                    counts[split] = counts.get(split, 0) + 1
            if canon.rows == 0:
                raise ValidationError(f"dataset {name!r} has no rows", field="source")
            if split_column is not None and split_column not in profile.columns:
                raise ValidationError(
                    f"split column {split_column!r} is not in the data", field="split_column"
                )
            digest = canon.digest
            split_info: dict[str, Any] = {}
            if counts:
                split_info = {
                    "method": "column" if split_column else "hash",
                    **(
                        {"column": split_column}
                        if split_column
                        else {"ratios": ratios, "seed": seed}
                    ),
                    "rows": counts,
                }
            with self._writing(project) as w:
                parent = w.resolve(derived_from, "dataset") if derived_from is not None else None
                existing = w.session.scalars(
                    select(t.Dataset).where(
                        t.Dataset.project_id == w.project.id,
                        t.Dataset.name == name,
                        t.Dataset.sha256 == digest,
                    )
                ).one_or_none()
                if existing is not None:
                    asked = splits is not None or split_column is not None
                    if asked and existing.splits != split_info:
                        raise ConflictError(
                            f"dataset:{name}@{existing.version} holds these rows with splits "
                            f"{existing.splits or 'none'}, not {split_info or 'none'}: register "
                            "them with the same split options, or under another name"
                        )
                    if parent is not None:
                        _derive(w, parent, existing)
                    aliases = aliases_of(w.session, w.project.id, self.kind, name)
                    info = self._info(w.session, existing, aliases.get(existing.version, []))
                    return info.model_copy(update={"created": False})
                stored = self._ctx.artifacts.put_file(canon.path)
                assert stored == digest
                row = self._add_version(
                    w,
                    name,
                    lambda _: t.Dataset(
                        sha256=digest,
                        format=fmt,
                        rows=canon.rows,
                        schema_=profile.schema(),
                        stats=profile.stats(),
                        splits=split_info,
                        description=description,
                    ),
                    sha256=digest,
                    rows=canon.rows,
                )
                if parent is not None:
                    _derive(w, parent, row)
                return self._info(w.session, row, [])

    def rows(self, project: str, ref: str, *, split: str | None = None) -> list[dict[str, Any]]:
        """The rows of a version (checked against its sha256), optionally of one split."""
        info = self.get(project, ref)
        lines = self._ctx.artifacts.read_bytes(info.sha256).decode().splitlines()
        out = [json.loads(line) for line in lines]
        if split is None:
            return out
        if not info.splits:
            raise ValidationError(f"{info.ref} has no splits", field="split")
        if split not in info.splits["rows"]:
            raise ValidationError(
                f"{info.ref} has no split {split!r}: it has {', '.join(info.splits['rows'])}",
                field="split",
            )
        ratios = info.splits.get("ratios")
        column = info.splits.get("column")
        seed = int(info.splits.get("seed", 0))
        return [
            row
            for row, line in zip(out, lines, strict=True)
            if _split_of(row, line, ratios, column, seed) == split
        ]

    def _info(self, session: Session, row: t.Dataset, aliases: list[str]) -> DatasetVersion:
        return DatasetVersion(
            kind=self.kind,
            name=row.name,
            version=row.version,
            description=row.description,
            created_at=row.created_at,
            created_by=row.created_by,
            aliases=aliases,
            sha256=row.sha256,
            format=row.format,
            rows=row.rows,
            schema_=dict(row.schema_),
            stats=dict(row.stats),
            splits=dict(row.splits),
        )


def _derive(w: WriteScope, parent: t.Dataset, child: t.Dataset) -> None:
    if parent.id == child.id:
        raise ValidationError(
            f"dataset:{child.name}@{child.version} cannot be derived from itself: these rows "
            "are already that version",
            field="derived_from",
        )
    add_edge(w.session, w.project.id, ("dataset", parent), ("dataset", child), "derived")


def _check_ratios(splits: Mapping[str, float]) -> dict[str, float]:
    ratios = {str(k): float(v) for k, v in splits.items()}
    if not ratios or any(v <= 0 for v in ratios.values()) or abs(sum(ratios.values()) - 1) > 1e-6:
        raise ValidationError(
            f"split ratios {ratios} must be positive and sum to 1 (e.g. train=0.9, test=0.1)",
            field="splits",
        )
    return ratios


def _split_of(
    row: Mapping[str, Any],
    line: str,
    ratios: Mapping[str, float] | None,
    column: str | None,
    seed: int,
) -> str | None:
    if column is not None:
        value = row.get(column)
        return None if value is None else str(value)
    if ratios is None:
        return None
    point = int(hashlib.sha256(f"{seed}:{line}".encode()).hexdigest()[:12], 16) / float(1 << 48)
    edge = 0.0
    names = list(ratios)
    for name in names:
        edge += ratios[name]
        if point < edge:
            return name
    return names[-1]


def _rows(
    source: str | Path | Sequence[Mapping[str, Any]],
) -> tuple[Iterable[Mapping[str, Any]], str]:
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ValidationError(f"dataset file {path} does not exist", field="source")
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValidationError(
                f"cannot read {path.name}: use .jsonl, .json or .csv", field="source"
            )
        return _read(path, fmt), fmt
    if (
        isinstance(source, Sequence)
        and not isinstance(source, str)
        and all(isinstance(r, Mapping) for r in source)
    ):
        return list(source), "records"
    raise ValidationError("a dataset source is a file path or a list of dicts", field="source")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a .jsonl, .json or .csv file, as registering it would read them; a line
    or item that is not a JSON object is an error naming it."""
    rows, _ = _rows(path)
    return [dict(row) for row in rows]


def _read(path: Path, fmt: str) -> Iterator[Mapping[str, Any]]:
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)
        return
    if fmt == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValidationError(f"{path.name} must hold a JSON list of objects", field="source")
        for i, row in enumerate(data):
            yield _object(row, f"{path.name} item {i}")
        return
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield _object(json.loads(line), f"{path.name} line {number}")
                except json.JSONDecodeError as error:
                    raise ValidationError(
                        f"{path.name} line {number} is not JSON: {error.msg}", field="source"
                    ) from None


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{where} is not a JSON object", field="source")
    return value


class _Canonical:
    """Rows written as canonical JSON lines to a temporary file, hashed as they go."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(suffix=".jsonl")
        self.path = Path(name)
        self._out = os.fdopen(fd, "w", encoding="utf-8")
        self._hash = hashlib.sha256()
        self.rows = 0

    def add(self, row: Mapping[str, Any]) -> str:
        try:
            line = json.dumps(
                row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            )
        except (TypeError, ValueError) as error:
            raise ValidationError(
                f"row {self.rows + 1} cannot be stored as JSON: {error}"
            ) from None
        data = line + "\n"
        self._out.write(data)
        self._hash.update(data.encode())
        self.rows += 1
        return line

    @property
    def digest(self) -> str:
        self._out.flush()
        return self._hash.hexdigest()

    def __enter__(self) -> _Canonical:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._out.close()
        self.path.unlink(missing_ok=True)


_JSON_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    for cls, name in _JSON_TYPES:
        if isinstance(value, cls):
            return name
    return type(value).__name__


class _Running:
    """min, max and mean of a stream of numbers, in constant memory."""

    def __init__(self) -> None:
        self.n, self.total = 0, 0.0
        self.low, self.high = float("inf"), float("-inf")

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.low, self.high = min(self.low, value), max(self.high, value)

    def summary(self, suffix: str = "") -> dict[str, float]:
        return (
            {
                f"min{suffix}": self.low,
                f"max{suffix}": self.high,
                f"mean{suffix}": self.total / self.n,
            }
            if self.n
            else {}
        )


class _Profile:
    """Schema (JSON types per column) and stats gathered in one pass."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, Any]] = {}

    def add(self, row: Mapping[str, Any]) -> None:
        for key, value in row.items():
            col = self.columns.setdefault(
                key,
                {
                    "types": set(),
                    "count": 0,
                    "nulls": 0,
                    "distinct": set(),
                    "num": _Running(),
                    "len": _Running(),
                },
            )
            kind = _type_name(value)
            col["types"].add(kind)
            if value is None:
                col["nulls"] += 1
                continue
            col["count"] += 1
            if len(col["distinct"]) <= _DISTINCT_CAP:
                col["distinct"].add(json.dumps(value, sort_keys=True))
            if kind in ("integer", "number"):
                col["num"].add(float(value))
            elif kind == "string":
                col["len"].add(float(len(value)))

    def schema(self) -> dict[str, str]:
        return {k: "|".join(sorted(c["types"])) for k, c in sorted(self.columns.items())}

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, col in sorted(self.columns.items()):
            distinct = len(col["distinct"])
            out[key] = {
                "count": col["count"],
                "nulls": col["nulls"],
                "distinct": distinct if distinct <= _DISTINCT_CAP else f">{_DISTINCT_CAP}",
                **col["num"].summary(),
                **col["len"].summary("_length"),
            }
        return out
