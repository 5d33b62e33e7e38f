"""Datasets on real SQLite and PostgreSQL: content-addressed versions whatever the input
format, schema and stats, stable hash splits and column splits, and refused inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from genai.errors import ConflictError, NotFoundError, ValidationError

P = "demo"
ROWS = [
    {"question": "What is LoRA?", "answer": "A low-rank adapter."},
    {"question": "What is QLoRA?", "answer": "LoRA on a 4-bit base."},
    {"question": "Who wins?", "answer": "Tests."},
]


@pytest.fixture
def admin(platform):
    client = platform()
    client.projects.create(P)
    return client


def _jsonl(path: Path, rows: list[dict[str, Any]], **dumps: Any) -> Path:
    path.write_text("".join(json.dumps(r, **dumps) + "\n" for r in rows), encoding="utf-8")
    return path


def _csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------ identity


def test_same_rows_in_any_format_are_the_same_version(admin, tmp_path: Path) -> None:
    datasets = admin.registry.datasets
    first = datasets.register(P, "faq", _jsonl(tmp_path / "faq.jsonl", ROWS))
    assert (first.version, first.created, first.format, first.rows) == (1, True, "jsonl", 3)
    reordered = [dict(reversed(list(r.items()))) for r in ROWS]  # key order is not content
    sources = [
        _csv(tmp_path / "faq.csv", ROWS),
        tmp_path / "faq.json",
        ROWS,
        _jsonl(tmp_path / "spaced.jsonl", reordered, indent=None, separators=(" , ", " : ")),
    ]
    (tmp_path / "faq.json").write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    for source in sources:
        again = datasets.register(P, "faq", source)
        assert again.created is False
        assert again.model_dump(exclude={"created"}) == first.model_dump(exclude={"created"})
    assert [d.version for d in datasets.list(P, name="faq")] == [1]


def test_blank_lines_in_jsonl_do_not_change_the_content(admin, tmp_path: Path) -> None:
    datasets = admin.registry.datasets
    first = datasets.register(P, "faq", ROWS)
    path = tmp_path / "blank.jsonl"
    path.write_text("\n" + "\n\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    assert datasets.register(P, "faq", path).sha256 == first.sha256


def test_different_content_is_a_new_version(admin) -> None:
    datasets = admin.registry.datasets
    v1 = datasets.register(P, "faq", ROWS)
    v2 = datasets.register(P, "faq", [*ROWS, {"question": "New?", "answer": "Yes."}])
    v3 = datasets.register(P, "faq", list(reversed(ROWS)))  # row order is content
    typed = datasets.register(P, "faq", [{"n": 1}])
    as_text = datasets.register(P, "faq", [{"n": "1"}])  # types are content too
    assert [v.version for v in (v1, v2, v3, typed, as_text)] == [1, 2, 3, 4, 5]
    assert len({v.sha256 for v in (v1, v2, v3, typed, as_text)}) == 5
    assert datasets.register(P, "faq", ROWS).version == 1  # an older content keeps its version
    assert datasets.get(P, "faq@2").rows == 4


def test_same_content_under_another_name_is_its_own_dataset(admin) -> None:
    datasets = admin.registry.datasets
    a = datasets.register(P, "a", ROWS)
    b = datasets.register(P, "b", ROWS)
    assert (b.name, b.version, b.created, b.sha256) == ("b", 1, True, a.sha256)


def test_rows_round_trip_and_are_checked_against_the_hash(admin) -> None:
    datasets = admin.registry.datasets
    rows = [{"text": "héllo ✓", "n": 1.5, "tags": ["a", "b"], "meta": {"k": None}}]
    info = datasets.register(P, "unicode", rows, description="odd values")
    assert datasets.rows(P, "unicode") == rows
    assert info.description == "odd values"
    assert admin.registry.artifacts.read_bytes(info.sha256).decode().splitlines() == [
        json.dumps(rows[0], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    ]


# ------------------------------------------------------------------ schema and stats


def test_schema_and_stats(admin) -> None:
    rows = [
        {"text": "ab", "n": 1, "score": 0.5, "ok": True},
        {"text": "abcd", "n": 3, "score": 1, "ok": False},
        {"text": None, "n": 2, "score": 0.5, "ok": True, "extra": [1]},
        {"text": "ab", "n": 2, "score": 2.5, "ok": True},
    ]
    info = admin.registry.datasets.register(P, "typed", rows)
    assert info.schema_ == {
        "extra": "array",
        "n": "integer",
        "ok": "boolean",
        "score": "integer|number",
        "text": "null|string",
    }
    assert info.stats["n"] == {
        "count": 4,
        "nulls": 0,
        "distinct": 3,
        "min": 1.0,
        "max": 3.0,
        "mean": 2.0,
    }
    assert info.stats["text"] == {
        "count": 3,
        "nulls": 1,
        "distinct": 2,
        "min_length": 2.0,
        "max_length": 4.0,
        "mean_length": pytest.approx(8 / 3),
    }
    assert info.stats["score"]["mean"] == 1.125
    assert info.stats["ok"] == {"count": 4, "nulls": 0, "distinct": 2}
    assert info.stats["extra"] == {"count": 1, "nulls": 0, "distinct": 1}
    assert admin.registry.datasets.get(P, "typed") == info


def test_csv_columns_are_strings(admin, tmp_path: Path) -> None:
    info = admin.registry.datasets.register(
        P, "table", _csv(tmp_path / "t.csv", [{"id": 1, "label": "x"}, {"id": 2, "label": "y"}])
    )
    assert (info.format, info.schema_) == ("csv", {"id": "string", "label": "string"})
    assert admin.registry.datasets.rows(P, "table") == [
        {"id": "1", "label": "x"},
        {"id": "2", "label": "y"},
    ]


# ------------------------------------------------------------------ splits


def _numbered(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "text": f"example {i}"} for i in range(count)]


def test_hash_splits_partition_the_rows(admin) -> None:
    datasets = admin.registry.datasets
    rows = _numbered(400)
    info = datasets.register(P, "big", rows, splits={"train": 0.75, "test": 0.25}, seed=7)
    counts = info.splits["rows"]
    assert info.splits == {
        "method": "hash",
        "ratios": {"train": 0.75, "test": 0.25},
        "seed": 7,
        "rows": counts,
    }
    assert set(counts) == {"train", "test"} and sum(counts.values()) == 400
    assert 240 <= counts["train"] <= 360  # 300 expected; a hash is not a coin, but close
    train, test = datasets.rows(P, "big", split="train"), datasets.rows(P, "big", split="test")
    assert (len(train), len(test)) == (counts["train"], counts["test"])
    ids = [r["id"] for r in train] + [r["id"] for r in test]
    assert sorted(ids) == list(range(400))  # disjoint, and together every row
    # each split keeps the dataset's row order
    assert [r["id"] for r in train] == sorted(r["id"] for r in train)


def test_hash_splits_are_stable_and_reproducible(admin) -> None:
    datasets = admin.registry.datasets
    rows = _numbered(200)
    ratios = {"train": 0.8, "validation": 0.1, "test": 0.1}
    first = datasets.register(P, "a", rows, splits=ratios)
    again = datasets.register(P, "a", rows, splits=ratios)
    elsewhere = datasets.register(P, "b", rows, splits=ratios)  # a fresh version, same rows
    assert again.created is False and elsewhere.created is True
    assert first.splits == again.splits == elsewhere.splits
    for split in ratios:
        assert datasets.rows(P, "a", split=split) == datasets.rows(P, "b", split=split)
    # a row's split depends on the row alone, not on its neighbours
    grown = datasets.register(P, "c", [*rows, *_numbered(260)[200:]], splits=ratios)
    assert grown.version == 1
    for split in ratios:
        old = datasets.rows(P, "a", split=split)
        assert [r for r in datasets.rows(P, "c", split=split) if r["id"] < 200] == old


def test_a_different_seed_assigns_rows_differently(admin) -> None:
    datasets = admin.registry.datasets
    rows = _numbered(200)
    datasets.register(P, "s0", rows, splits={"train": 0.5, "test": 0.5}, seed=0)
    datasets.register(P, "s1", rows, splits={"train": 0.5, "test": 0.5}, seed=1)
    assert datasets.rows(P, "s0", split="test") != datasets.rows(P, "s1", split="test")


def test_split_column_takes_the_split_from_the_data(admin) -> None:
    datasets = admin.registry.datasets
    rows: list[dict[str, str | None]] = [
        {"text": f"t{i}", "fold": "train" if i % 3 else "eval"} for i in range(9)
    ]
    rows.append({"text": "unassigned", "fold": None})
    info = datasets.register(P, "folds", rows, split_column="fold")
    assert info.splits == {"method": "column", "column": "fold", "rows": {"eval": 3, "train": 6}}
    assert datasets.rows(P, "folds", split="eval") == [rows[0], rows[3], rows[6]]
    assert [r["text"] for r in datasets.rows(P, "folds", split="train")] == [
        "t1",
        "t2",
        "t4",
        "t5",
        "t7",
        "t8",
    ]


def test_unknown_split_or_no_splits_is_refused(admin) -> None:
    datasets = admin.registry.datasets
    datasets.register(P, "plain", ROWS)
    datasets.register(P, "split", _numbered(50), splits={"train": 0.5, "test": 0.5})
    with pytest.raises(ValidationError, match="has no splits"):
        datasets.rows(P, "plain", split="train")
    with pytest.raises(ValidationError, match="no split 'dev'") as caught:
        datasets.rows(P, "split", split="dev")
    assert caught.value.field == "split"


# ------------------------------------------------------------------ refused inputs


def test_missing_file_is_refused(admin, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        admin.registry.datasets.register(P, "faq", tmp_path / "missing.jsonl")


def test_bad_json_line_is_named(admin, tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + '{"question": "broken"\n')
    with pytest.raises(ValidationError, match=r"faq\.jsonl line 3 is not JSON"):
        admin.registry.datasets.register(P, "faq", path)
    assert admin.registry.datasets.list(P) == []


def _message(call) -> str:
    """The ValidationError message a call raises, or ``ok``."""
    try:
        call()
    except ValidationError as error:
        return error.message
    return "ok"


def test_malformed_files_are_refused(admin, tmp_path: Path) -> None:
    cases = {
        "rows.jsonl": ('{"a": 1}\n[1, 2]\n', "rows.jsonl line 2 is not a JSON object"),
        "list.json": ('{"a": 1}', "list.json must hold a JSON list of objects"),
        "items.json": ('[{"a": 1}, "text"]', "items.json item 1 is not a JSON object"),
        "rows.txt": ("a,b\n", "cannot read rows.txt: use .jsonl, .json or .csv"),
    }
    for name, (text, _) in cases.items():
        (tmp_path / name).write_text(text)
    outcomes = {
        name: _message(lambda n=name: admin.registry.datasets.register(P, "faq", tmp_path / n))
        for name in cases
    }
    assert outcomes == {name: message for name, (_, message) in cases.items()}


def test_empty_dataset_is_refused(admin, tmp_path: Path) -> None:
    files = {"empty.jsonl": "", "blank.jsonl": "\n \n", "empty.csv": "a,b\n", "empty.json": "[]"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    sources: list[object] = [tmp_path / name for name in files] + [[]]
    outcomes = [
        _message(lambda s=s: admin.registry.datasets.register(P, "faq", s)) for s in sources
    ]
    assert outcomes == ["dataset 'faq' has no rows"] * len(sources)
    assert admin.registry.datasets.list(P) == []


def test_split_ratios_must_be_positive_and_sum_to_one(admin) -> None:
    bad = [
        {"train": 0.8, "test": 0.1},
        {"train": 0.8, "test": 0.3},
        {"train": 1.2, "test": -0.2},
        {"train": 1.0, "test": 0.0},
        {},
    ]
    for splits in bad:
        with pytest.raises(ValidationError, match="sum to 1") as caught:
            admin.registry.datasets.register(P, "faq", ROWS, splits=splits)
        assert caught.value.field == "splits", splits
    assert admin.registry.datasets.list(P) == []
    assert admin.registry.datasets.register(
        P, "faq", ROWS, splits={"a": 0.1, "b": 0.2, "c": 0.7}
    ).splits["ratios"] == {"a": 0.1, "b": 0.2, "c": 0.7}


def test_split_options_are_checked(admin) -> None:
    datasets = admin.registry.datasets
    with pytest.raises(ValidationError, match="not both"):
        datasets.register(P, "faq", ROWS, splits={"train": 1.0}, split_column="fold")
    with pytest.raises(ValidationError, match="'fold' is not in the data"):
        datasets.register(P, "faq", ROWS, split_column="fold")
    assert datasets.list(P) == []


def test_sources_that_are_not_rows_are_refused(admin) -> None:
    sources = {
        "mixed-list": [{"a": 1}, "not a dict"],
        "number": 42,
        "dict": {"a": 1},
        "unserialisable": [{"when": object()}],
        "generator": ({"a": 1} for _ in "x"),
    }
    outcomes = {
        name: _message(lambda s=source: admin.registry.datasets.register(P, "faq", s)) != "ok"
        for name, source in sources.items()
    }
    assert outcomes == dict.fromkeys(sources, True)
    assert admin.registry.datasets.list(P) == []


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_values_json_cannot_hold_are_refused(admin, tmp_path: Path, value: float) -> None:
    with pytest.raises(ValidationError, match="row 2"):
        admin.registry.datasets.register(P, "faq", [{"x": 1.0}, {"x": value}])
    # Python's json module reads NaN and Infinity from a file; the store must not keep them
    path = _jsonl(tmp_path / "floats.jsonl", [{"x": value}])
    with pytest.raises(ValidationError, match="row 1"):
        admin.registry.datasets.register(P, "faq", path)
    assert admin.registry.datasets.list(P) == []


def test_same_rows_with_other_split_options_are_refused(admin) -> None:
    rows = [{"q": str(i)} for i in range(20)]
    first = admin.registry.datasets.register(P, "qa", rows, splits={"train": 0.8, "test": 0.2})
    again = admin.registry.datasets.register(P, "qa", rows)  # no split options: the same version
    assert (again.version, again.created, again.splits) == (first.version, False, first.splits)
    with pytest.raises(ConflictError, match="same split options"):
        admin.registry.datasets.register(P, "qa", rows, splits={"train": 0.5, "test": 0.5})
    admin.registry.datasets.register(P, "plain", rows)
    with pytest.raises(ConflictError):
        admin.registry.datasets.register(P, "plain", rows, split_column="q")
    assert [d.version for d in admin.registry.datasets.list(P, name="qa")] == [1]


# ------------------------------------------------------------------ derived datasets


def _edges(admin, ref: str) -> list[tuple[str, str, str]]:
    return sorted((e.parent, e.child, e.relation) for e in admin.registry.lineage(P, ref).edges)


def test_a_derived_dataset_has_its_parent_in_the_lineage(admin) -> None:
    datasets = admin.registry.datasets
    datasets.register(P, "raw", ROWS)
    datasets.register(P, "raw", ROWS[:1])  # raw@2
    clean = datasets.register(P, "clean", ROWS[1:], derived_from="dataset:raw@1")
    assert _edges(admin, clean.ref) == [("dataset:raw@1", "dataset:clean@1", "derived")]
    # The same rows again: the same version, and still one edge (plus a new parent).
    again = datasets.register(P, "clean", ROWS[1:], derived_from="raw@1")
    assert (again.ref, again.created) == ("dataset:clean@1", False)
    also = datasets.register(P, "clean", ROWS[1:], derived_from="raw@2")
    assert also.created is False
    assert _edges(admin, "dataset:clean@1") == [
        ("dataset:raw@1", "dataset:clean@1", "derived"),
        ("dataset:raw@2", "dataset:clean@1", "derived"),
    ]
    assert "dataset:clean@1" in admin.registry.lineage(P, "dataset:raw@1").descendants


def test_derived_from_an_unknown_or_foreign_dataset_is_not_found(admin, platform) -> None:
    datasets = admin.registry.datasets
    admin.projects.create("other")
    admin.registry.datasets.register("other", "raw", ROWS)
    for ref in ("dataset:missing", "dataset:raw@1"):  # raw is the other project's
        with pytest.raises(NotFoundError):
            datasets.register(P, "clean", ROWS, derived_from=ref)
    with pytest.raises(ValidationError, match="dataset reference"):
        datasets.register(P, "clean", ROWS, derived_from="model:base@1")
    assert datasets.list(P) == []


def test_a_dataset_is_not_derived_from_itself(admin) -> None:
    admin.registry.datasets.register(P, "raw", ROWS)
    with pytest.raises(ValidationError, match="itself") as caught:
        admin.registry.datasets.register(P, "raw", ROWS, derived_from="raw@1")
    assert caught.value.field == "derived_from"
