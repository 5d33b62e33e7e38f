"""The lineage graph drawn: dataset → run → adapter → deployment → eval run (and models,
prompt versions, suites) as an inline SVG of boxes and arrows, each box a link to that
node's page (or to the graph centred on it, for kinds without a page of their own).

The layout is a simple layered one written here by hand (no graph library, no script):
each node's layer is the longest path to it from a node without parents, so every arrow
points rightwards; inside a layer the nodes are ordered by the mean position of their
parents (one barycentre pass), then by name. The same graph follows as a list of its
edges, for readers that do not see the drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup, escape

from apps.hub._web import Page, page_of, render
from genai.registry import LineageGraph

__all__ = ["Drawn", "lineage_figure", "router"]

router = APIRouter()

_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _PAD = 160, 40, 44, 14, 8
_CHARS = 21  # of a label inside its box (the whole label is its tooltip)
#: The most nodes drawn (a graph with more is cut, nearest layers first, and says so).
MAX_NODES = 120
#: Hops followed from the node shown, each way, unless the page asks for another depth.
DEPTH = 4


@dataclass(frozen=True)
class Drawn:
    """A graph ready for a template: the SVG, the edges as text, whether it was cut."""

    svg: Markup
    edges: list[tuple[str, str, str, str, str]]  # parent, its url, relation, child, url
    root: str
    cut: bool


def node_url(page: Page, label: str) -> str:
    """The page of a node (``kind:name@version`` or ``run:id``/``eval:id``)."""
    hub, p = page.hub, page.project
    kind, _, rest = label.partition(":")
    name, _, version = rest.partition("@")
    if rest.startswith("#"):  # a deleted entry: the graph of what is left around it
        return hub.url("p", p, "registry")
    if kind == "dataset":
        return hub.url("p", p, "registry", "datasets", name, version=version or None)
    if kind == "run":
        return hub.url("p", p, "registry", "runs", name)
    if kind == "eval":
        return hub.url("p", p, "evals", name)
    if kind == "prompt":
        return hub.url("p", p, "prompts", name) + (f"#v{version}" if version.isdigit() else "")
    if kind == "deployment":
        return hub.url("p", p, "deployments")
    return hub.url("p", p, "registry", "lineage", ref=label)  # models, adapters, suites


def _layers(nodes: list[str], parents: dict[str, set[str]]) -> dict[str, int]:
    """Longest path from a source to each node (a cycle, which lineage never has, is cut)."""
    layer: dict[str, int] = {}

    def depth(node: str, seen: frozenset[str]) -> int:
        if node in layer:
            return layer[node]
        ups = [p for p in parents.get(node, ()) if p not in seen]
        value = 1 + max((depth(p, seen | {p}) for p in ups), default=-1)
        layer[node] = value
        return value

    for node in nodes:
        depth(node, frozenset({node}))
    return layer


def _order(layers: dict[str, int], parents: dict[str, set[str]]) -> list[list[str]]:
    """Nodes by layer, each layer by its parents' mean position, then by name."""
    columns: list[list[str]] = [[] for _ in range(max(layers.values(), default=-1) + 1)]
    for node in sorted(layers):
        columns[layers[node]].append(node)
    position: dict[str, int] = {}
    for column in columns:
        ups = {n: [position[p] for p in parents.get(n, ()) if p in position] for n in column}
        column.sort(key=lambda n: (sum(ups[n]) / len(ups[n]) if ups[n] else -1.0, n))
        position.update({n: i for i, n in enumerate(column)})
    return columns


def _short(text: str) -> str:
    return text if len(text) <= _CHARS else text[: _CHARS - 1] + "…"


def _route(where: dict[str, tuple[float, float]], parent: str, via: list[str], child: str) -> str:
    """An edge's SVG path: from the parent's right side to the child's left side, a curve
    across each gap between columns and a straight run past each waypoint."""
    (px, py), (cx, cy) = where[parent], where[child]
    points = [(px + _BOX_W, py + _BOX_H / 2)]
    for waypoint in via:
        x, y = where[waypoint]
        points += [(x, y + _BOX_H / 2), (x + _BOX_W, y + _BOX_H / 2)]
    points.append((cx, cy + _BOX_H / 2))
    d = [f"M {points[0][0]:.1f} {points[0][1]:.1f}"]
    for k in range(1, len(points)):
        (x0, y0), (x1, y1) = points[k - 1], points[k]
        if k % 2:  # across a gap
            mid = (x0 + x1) / 2
            d.append(f"C {mid:.1f} {y0:.1f}, {mid:.1f} {y1:.1f}, {x1:.1f} {y1:.1f}")
        else:
            d.append(f"L {x1:.1f} {y1:.1f}")
    return " ".join(d)


def draw(page: Page, graph: LineageGraph) -> Drawn:
    """The graph's SVG (arrows parent → child, the root outlined) and its edges as text."""
    nodes = list(dict.fromkeys([*graph.ancestors, graph.root, *graph.descendants]))
    for e in graph.edges:
        nodes.extend(n for n in (e.parent, e.child) if n not in nodes)
    cut = len(nodes) > MAX_NODES
    kept = set(nodes[:MAX_NODES]) | {graph.root}
    edges = [e for e in graph.edges if e.parent in kept and e.child in kept]
    parents: dict[str, set[str]] = {}
    for e in edges:
        parents.setdefault(e.child, set()).add(e.parent)
    layer = _layers(sorted(kept), parents)
    # an edge across several layers passes through a waypoint in each layer between (a
    # place of its own in that column), so it runs beside the boxes, not through them
    via: list[list[str]] = []
    ordering: dict[str, set[str]] = {}
    for number, e in enumerate(edges):
        previous, points = e.parent, []
        for between in range(layer[e.parent] + 1, layer[e.child]):
            waypoint = f"\x00{number}:{between}"
            layer[waypoint], ordering[waypoint] = between, {previous}
            points.append(waypoint)
            previous = waypoint
        ordering.setdefault(e.child, set()).add(previous)
        via.append(points)
    columns = _order(layer, ordering)
    where: dict[str, tuple[float, float]] = {}
    for i, column in enumerate(columns):
        for j, node in enumerate(column):
            where[node] = (_PAD + i * (_BOX_W + _GAP_X), _PAD + j * (_BOX_H + _GAP_Y))
    width = _PAD * 2 + len(columns) * _BOX_W + max(len(columns) - 1, 0) * _GAP_X
    tallest = max((len(c) for c in columns), default=1)
    height = _PAD * 2 + tallest * _BOX_H + max(tallest - 1, 0) * _GAP_Y
    title = f"Lineage of {graph.root}"
    parts = [
        f'<svg class="lineage" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' aria-labelledby="lineage-title">',
        f'<title id="lineage-title">{escape(title)}</title>',
        '<defs><marker id="lineage-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" class="arrow-head"/></marker></defs>',
    ]
    for e, points in zip(edges, via, strict=True):
        parts.append(
            f'<path class="edge" d="{_route(where, e.parent, points, e.child)}" '
            'marker-end="url(#lineage-arrow)">'
            f"<title>{escape(e.parent)} → {escape(e.child)} ({escape(e.relation)})</title></path>"
        )
    for node in sorted(kept):
        x, y = where[node]
        kind = node.partition(":")[0]
        css = "node root" if node == graph.root else "node"
        parts.append(
            f'<a href="{escape(node_url(page, node))}" class="{css}" data-node="{escape(node)}">'
            f"<title>{escape(node)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" rx="5"/>'
            f'<text class="kind" x="{x + 8:.1f}" y="{y + 15:.1f}">{escape(kind)}</text>'
            f'<text class="name" x="{x + 8:.1f}" y="{y + 32:.1f}">'
            f"{escape(_short(node.partition(':')[2]))}</text></a>"
        )
    parts.append("</svg>")
    listed = [
        (e.parent, node_url(page, e.parent), e.relation, e.child, node_url(page, e.child))
        for e in edges
    ]
    return Drawn(Markup("".join(parts)), listed, graph.root, cut)


def lineage_figure(page: Page, ref: str, *, depth: int = DEPTH) -> Drawn:
    """``ref``'s lineage (``depth`` hops each way) drawn, as the registry resolves it for
    the page's caller (another project's entry: not found)."""
    graph = page.scope.client.registry.lineage(page.project, ref, depth=depth)
    return draw(page, graph)


Ref = Annotated[str, Query(min_length=1, max_length=300)]
Depth = Annotated[int, Query(ge=1, le=10)]


@router.get("/p/{project}/registry/lineage", include_in_schema=False)
def lineage_page(request: Request, project: str, ref: Ref, depth: Depth = DEPTH) -> Response:
    """The lineage graph around one entry (``adapter:support@2``, ``run:ID``…)."""
    page = page_of(request, project)
    drawn = lineage_figure(page, ref, depth=depth)
    return render(
        request, "lineage.html", page=page, section="registry", lineage=drawn, depth=depth
    )
