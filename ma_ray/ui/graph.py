"""A lineage tree laid out for drawing: one column per hop from the start node, nodes spaced down each column,
an edge per parent -> child link. Pure: the page draws it as SVG, every node a link to its own lineage."""

from __future__ import annotations

from dataclasses import dataclass, field

from ma_ray.palette import LineageTree

COLUMN_WIDTH_PX = 350
ROW_HEIGHT_PX = 44
MARGIN_PX = 16
NODE_WIDTH_PX = 310
NODE_HEIGHT_PX = 30


@dataclass(frozen=True)
class PlacedNode:
    node: str
    kind: str  # raw, group, feature, snapshot, model: the part before the first ':' (features are '@...')
    x: int
    y: int

    @property
    def label(self) -> str:
        return node_label(self.node)


@dataclass
class GraphLayout:
    nodes: list[PlacedNode] = field(default_factory=list)
    edges: list[tuple[PlacedNode, PlacedNode]] = field(default_factory=list)
    width: int = 0
    height: int = 0
    node_width: int = NODE_WIDTH_PX
    node_height: int = NODE_HEIGHT_PX


def node_kind(node: str) -> str:
    return "feature" if node.startswith("@") else node.split(":", 1)[0]


def node_label(node: str) -> str:
    """What a box shows (its full name is its tooltip): ``group.feature`` for a feature ref, ``catalog.group``
    for a group, the rest without its kind."""
    parts = node.split(":")
    if node.startswith("@") and len(parts) >= 4:
        return f"{parts[2]}.{parts[3]}"
    if parts[0] == "group" and len(parts) == 3:
        return f"{parts[1]}.{parts[2]}"
    return node.split(":", 1)[-1] if parts[0] in ("raw", "snapshot", "model") else node


def layout(tree: LineageTree) -> GraphLayout:
    """Columns by depth, each node once (a node reached twice keeps its first place, and every edge is drawn)."""
    placed: dict[str, PlacedNode] = {}
    rows_used: dict[int, int] = {}
    graph = GraphLayout()
    stack: list[tuple[LineageTree, int, PlacedNode | None]] = [(tree, 0, None)]
    while stack:
        current, depth, parent = stack.pop()
        node = placed.get(current.node)
        if node is None:
            row = rows_used.get(depth, 0)
            rows_used[depth] = row + 1
            x, y = MARGIN_PX + depth * COLUMN_WIDTH_PX, MARGIN_PX + row * ROW_HEIGHT_PX
            node = placed[current.node] = PlacedNode(current.node, node_kind(current.node), x, y)
            graph.nodes.append(node)
        if parent is not None:
            graph.edges.append((parent, node))
        if not current.repeated:
            stack.extend((child, depth + 1, node) for child in reversed(current.children))
    graph.width = MARGIN_PX * 2 + (max(rows_used) if rows_used else 0) * COLUMN_WIDTH_PX + NODE_WIDTH_PX
    graph.height = MARGIN_PX * 2 + max(rows_used.values(), default=1) * ROW_HEIGHT_PX
    return graph
