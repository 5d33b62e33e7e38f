"""No test asserts on wall-clock time (DESIGN.md, Tests): a bound on how long something
took passes on a quiet machine and fails on a busy one. Time-dependent components take an
injected clock (tests/_clocks.py's ``ManualClock``), what happens is counted or ordered by
events, and speed is measured in bench/.

The check reads every test module (and the shipped test kit, ``genai.testing``) with
``ast``. A value is *clock-derived* when it comes from ``time.monotonic``/``perf_counter``/
``time``/``process_time`` (or their ``_ns`` forms), ``datetime.now``/``utcnow``: directly,
through a name or attribute assigned from one (``started = time.monotonic()``,
``sent.elapsed_ms = ...``), through a dataclass field filled with one (``Recorded(...,
time.monotonic())`` makes every ``.at`` suspect), or through a function of the module that
returns one. An ``assert`` (or an ``if ...: pytest.fail(...)``) that orders a clock-derived
value (``<``, ``<=``, ``>``, ``>=``) or compares one with ``pytest.approx`` is flagged, and
so is one that bounds from above a value *named* as a duration (``elapsed``, ``took``,
``latency``, ``..._ms``, ``..._seconds``), however it was measured: the heap-freeze test
parsed its ``full_pass_ms`` from another process's output.

A bounded wait is not an assertion: ``while time.monotonic() < deadline`` and
``assert wait_until(predicate, timeout=30)`` (tests/_clocks.py) are fine, because what is
asserted is the predicate, and the bound only keeps a hang from stalling the suite.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = (ROOT / "tests", ROOT / "genai" / "testing")

_TIME_FUNCTIONS = {
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
    "time",
    "time_ns",
    "process_time",
    "process_time_ns",
    "thread_time",
    "thread_time_ns",
}
_DATETIME_FUNCTIONS = {"now", "utcnow", "today"}
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_DURATION = re.compile(r"elapsed|took|duration|latency|_ms$|_seconds$", re.IGNORECASE)
_ONE_TARGET = (
    ast.AnnAssign,
    ast.AugAssign,
    ast.NamedExpr,
    ast.For,
    ast.AsyncFor,
    ast.comprehension,
)


@dataclass
class _Module:
    path: str
    tree: ast.Module
    time_aliases: set[str] = field(default_factory=set)  # ``import time as t``: {"t"}
    clock_names: set[str] = field(default_factory=set)  # ``from time import monotonic``
    datetime_names: set[str] = field(default_factory=set)  # ``from datetime import datetime``
    clock_helpers: set[str] = field(default_factory=set)  # functions returning a clock value
    global_names: set[str] = field(default_factory=set)  # module-level clock-derived names
    attributes: set[str] = field(default_factory=set)  # ``x.attr = <clock-derived>`` here


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    source: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source}"


class _Taint:
    """What is clock-derived: names per scope, attribute names set in the module, and
    dataclass fields a clock fills (``fields``, across every module)."""

    def __init__(self, module: _Module, fields: set[str], names: set[str]) -> None:
        self.module = module
        self.fields = fields
        self.names = names

    def is_clock_call(self, node: ast.AST) -> bool:
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        if isinstance(func, ast.Name):
            return func.id in self.module.clock_names or func.id in self.module.clock_helpers
        if isinstance(func, ast.Attribute):
            base = func.value
            if isinstance(base, ast.Name) and base.id in self.module.time_aliases:
                return func.attr in _TIME_FUNCTIONS
            if func.attr in _DATETIME_FUNCTIONS:
                return _names_datetime(base, self.module)
        return False

    def dirty(self, node: ast.AST | None) -> bool:
        """Whether the expression involves a clock-derived value."""
        if node is None:
            return False
        for sub in ast.walk(node):
            if self.is_clock_call(sub):
                return True
            if isinstance(sub, ast.Name) and sub.id in self.names:
                return True
            if isinstance(sub, ast.Attribute) and (
                sub.attr in self.fields or sub.attr in self.module.attributes
            ):
                return True
        return False


def _names_datetime(node: ast.AST, module: _Module) -> bool:
    """``datetime``/``date`` (imported from datetime) or ``datetime.datetime``."""
    if isinstance(node, ast.Name):
        return node.id in module.datetime_names
    return (
        isinstance(node, ast.Attribute)
        and node.attr in ("datetime", "date")
        and isinstance(node.value, ast.Name)
        and node.value.id == "datetime"
    )


def _read_imports(module: _Module) -> None:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "time":
                    module.time_aliases.add(alias.asname or "time")
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            for alias in node.names:
                if alias.name in _TIME_FUNCTIONS:
                    module.clock_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "datetime":
            for alias in node.names:
                if alias.name in ("datetime", "date"):
                    module.datetime_names.add(alias.asname or alias.name)


def _targets(node: ast.AST) -> Iterator[ast.expr]:
    """Where an assignment-like node stores: its targets and what it iterates into."""
    if isinstance(node, ast.Assign):
        yield from node.targets
    elif isinstance(node, _ONE_TARGET):
        yield node.target
    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
        yield node.optional_vars


def _value(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
        return node.value
    if isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
        return node.iter
    if isinstance(node, ast.withitem):
        return node.context_expr
    return None


def _stored(target: ast.expr) -> Iterator[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _stored(element)
    elif isinstance(target, ast.Starred):
        yield from _stored(target.value)
    else:
        yield target


def _scopes(tree: ast.Module) -> Iterator[list[ast.AST]]:
    """The module's own statements, then each top-level function or method (with what is
    nested in it: closures share their names)."""
    top: list[ast.AST] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield [node]
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield [item]
                else:
                    top.append(item)
        else:
            top.append(node)
    yield top


def _walk(scope: list[ast.AST]) -> Iterator[ast.AST]:
    for node in scope:
        yield from ast.walk(node)


def _scope_taint(scope: list[ast.AST], module: _Module, fields: set[str]) -> _Taint:
    """The clock-derived names of a scope (seeded with the module's), to a fixed point;
    attributes stored from clock-derived values join the module's."""
    names = set(module.global_names)
    attributes = module.attributes
    taint = _Taint(module, fields, names)
    while True:
        before = (len(names), len(attributes))
        for node in _walk(scope):
            if not taint.dirty(_value(node)):
                continue
            for target in _targets(node):
                for stored in _stored(target):
                    if isinstance(stored, ast.Name):
                        names.add(stored.id)
                    elif isinstance(stored, ast.Attribute):
                        attributes.add(stored.attr)
        if (len(names), len(attributes)) == before:
            return taint


def _spread(module: _Module, fields: set[str]) -> bool:
    """One pass of taint propagation over the module; whether anything new was found."""

    def size() -> tuple[int, int, int]:
        return len(module.attributes), len(module.clock_helpers), len(module.global_names)

    before = size()
    *functions, top = list(_scopes(module.tree))
    module.global_names |= _scope_taint(top, module, fields).names
    for scope in functions:
        taint = _scope_taint(scope, module, fields)
        for node in scope:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                returns = [n for n in ast.walk(node) if isinstance(n, ast.Return)]
                if any(taint.dirty(r.value) for r in returns):
                    module.clock_helpers.add(node.name)
    return size() != before


def _dataclass_fields(module: _Module, fields: set[str]) -> None:
    """Fields of the module's dataclasses that a clock fills: by ``default_factory``, or
    by an argument of a constructor call in the module."""
    declared: dict[str, list[str]] = {}
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.ClassDef) or not any(
            "dataclass" in ast.unparse(d) for d in node.decorator_list
        ):
            continue
        names = []
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                names.append(item.target.id)
                factory = _default_factory(item.value)
                if factory is not None and _Taint(module, set(), set()).is_clock_call(
                    ast.Call(func=factory, args=[], keywords=[])
                ):
                    fields.add(item.target.id)
        declared[node.name] = names
    taint = _Taint(module, fields, set())
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        known = declared.get(node.func.id)
        if known is None:
            continue
        for name, arg in zip(known, node.args, strict=False):
            if taint.dirty(arg):
                fields.add(name)
        for keyword in node.keywords:
            if keyword.arg in known and taint.dirty(keyword.value):
                fields.add(keyword.arg)


def _default_factory(value: ast.expr | None) -> ast.expr | None:
    if isinstance(value, ast.Call):
        for keyword in value.keywords:
            if keyword.arg == "default_factory":
                return keyword.value
    return None


def _is_approx(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "approx") or (
        isinstance(func, ast.Name) and func.id == "approx"
    )


def _wall_clock_comparison(test: ast.AST, taint: _Taint) -> bool:
    for node in ast.walk(test):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(op, _ORDERING) for op in node.ops) and any(
            taint.dirty(o) for o in operands
        ):
            return True
        if any(_is_approx(o) for o in operands) and any(taint.dirty(o) for o in operands):
            return True
        for left, op, right in zip(operands, node.ops, operands[1:], strict=False):
            below = left if isinstance(op, ast.Lt | ast.LtE) else None
            below = right if isinstance(op, ast.Gt | ast.GtE) else below
            if below is not None and _names_a_duration(below):
                return True
    return False


def _names_a_duration(node: ast.AST) -> bool:
    """Whether the expression names a duration (``elapsed``, ``took``, ``full_pass_ms``):
    bounded from above, it is a speed test whatever measured it (another process, say)."""
    for sub in ast.walk(node):
        name = sub.id if isinstance(sub, ast.Name) else getattr(sub, "attr", None)
        if isinstance(name, str) and _DURATION.search(name):
            return True
    return False


def _fails(body: list[ast.stmt]) -> bool:
    """Whether a block fails the test (``pytest.fail(...)`` or ``raise AssertionError``)."""
    for node in (sub for stmt in body for sub in ast.walk(stmt)):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("fail"):
            return True
        if isinstance(node, ast.Raise) and "AssertionError" in ast.unparse(node.exc or node):
            return True
    return False


def _findings(module: _Module, fields: set[str]) -> Iterator[Finding]:
    for scope in _scopes(module.tree):
        taint = _scope_taint(scope, module, fields)
        for node in _walk(scope):
            if isinstance(node, ast.Assert):
                test: ast.AST = node.test
            elif isinstance(node, ast.If) and _fails(node.body):
                test = node.test
            else:
                continue
            if _wall_clock_comparison(test, taint):
                yield Finding(module.path, node.lineno, ast.unparse(test))


def wall_clock_asserts(sources: Iterable[tuple[str, str]]) -> list[Finding]:
    """The wall-clock assertions in ``(path, source)`` modules, read together (a
    dataclass field or attribute a clock fills in one module is suspect in all)."""
    modules = []
    for path, source in sources:
        module = _Module(path, ast.parse(source, filename=path))
        _read_imports(module)
        modules.append(module)
    fields: set[str] = set()
    while True:
        before = len(fields)
        for module in modules:
            _dataclass_fields(module, fields)
        grew = [_spread(module, fields) for module in modules]
        if not any(grew) and len(fields) == before:
            break
    return [finding for module in modules for finding in _findings(module, fields)]


def _project_sources() -> list[tuple[str, str]]:
    files = sorted(path for root in SCANNED if root.is_dir() for path in root.rglob("*.py"))
    return [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in files]


def test_no_test_asserts_on_wall_clock_time() -> None:
    sources = _project_sources()
    assert len(sources) > 50, "the test modules were not found"
    found = wall_clock_asserts(sources)
    assert not found, (
        "these assert on wall-clock time, which a busy machine breaks; inject a clock "
        "(tests/_clocks.py), count or order events instead, and measure speed in bench/:\n"
        + "\n".join(map(str, found))
    )


# ------------------------------------------------------------------ the checker itself


def _check(source: str, *others: str) -> list[int]:
    """The lines flagged in ``source`` (read together with ``others``)."""
    modules = [("t.py", textwrap.dedent(source))]
    modules += [(f"o{i}.py", textwrap.dedent(o)) for i, o in enumerate(others)]
    return [f.line for f in wall_clock_asserts(modules) if f.path == "t.py"]


SAMPLES = Path(__file__).with_name("wall_clock_samples.txt")


def _samples(kind: str) -> dict[str, str]:
    """The samples of one kind (``flagged``, ``clean``, ``recorder``) in SAMPLES, by name."""
    found: dict[str, str] = {}
    name = None
    for line in SAMPLES.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("## "):
            sample_kind, _, title = line[3:].partition(": ")
            name = title.strip() if sample_kind == kind else None
            if name is not None:
                found[name] = ""  # its first line is the blank one under the header
        elif name is not None:
            found[name] += line
    return found


# The patterns this repository's tests used before they were rewritten, clean ones, and the
# fake server that recorded arrival times (its ``.at`` is what one flagged sample reads).
FLAGGED = _samples("flagged")
CLEAN = _samples("clean")
(RECORDER,) = _samples("recorder").values()


@pytest.mark.parametrize("name", sorted(FLAGGED))
def test_the_checker_flags_a_wall_clock_assert(name: str) -> None:
    assert _check(FLAGGED[name], RECORDER), f"not flagged: {name}"


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_the_checker_leaves_clock_free_asserts_alone(name: str) -> None:
    assert _check(CLEAN[name], RECORDER) == []


def test_the_checker_names_the_line() -> None:
    lines = _check(FLAGGED["elapsed since a start"])
    assert lines == [6]
