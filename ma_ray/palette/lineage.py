"""The lineage graph: raw sources -> feature groups -> features -> derived features -> snapshots -> models.

Nodes are strings: ``raw:<table>``, ``group:<catalog>:<group>``, feature refs (``@palette:...``,
``@basis:...``), ``snapshot:<id>`` and ``model:<name>:<version>``. Edges point downstream (from what is
used to what uses it). Walks read edges through a function, so they run over any meta store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Direction(StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


@dataclass(frozen=True)
class Edge:
    parent: str
    child: str


def raw_node(table: str) -> str:
    return f"raw:{table}"


def group_node(catalog: str, group: str) -> str:
    return f"group:{catalog}:{group}"


def snapshot_node(snapshot_id: str) -> str:
    return f"snapshot:{snapshot_id}"


def model_node(model: str, version: int | str) -> str:
    return f"model:{model}:{version}"


@dataclass
class LineageTree:
    node: str
    children: list[LineageTree] = field(default_factory=list)
    repeated: bool = False  # already shown elsewhere in this tree (diamonds are common)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"node": self.node, "children": [c.as_json() for c in self.children]}
        if self.repeated:
            data["repeated"] = True
        return data

    def nodes(self) -> set[str]:
        found = {self.node}
        for child in self.children:
            found |= child.nodes()
        return found

    def render(self) -> str:
        """A readable tree, like `tree`."""
        lines = [self.node]
        self._render_children(lines, "")
        return "\n".join(lines)

    def _render_children(self, lines: list[str], prefix: str) -> None:
        for index, child in enumerate(self.children):
            last = index == len(self.children) - 1
            suffix = " (see above)" if child.repeated else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{child.node}{suffix}")
            child._render_children(lines, prefix + ("    " if last else "│   "))


def walk(start: str, neighbours: Callable[[str], list[str]], max_nodes: int = 10_000) -> LineageTree:
    """The tree of everything reachable from ``start`` through ``neighbours`` (parents or children), in
    display order; a node reached again is shown once more, marked ``repeated``, and not expanded twice."""
    root = LineageTree(start)
    seen: set[str] = set()
    stack = [root]
    while stack and len(seen) < max_nodes:
        tree = stack.pop()
        if tree.node in seen:
            tree.repeated = True
            continue
        seen.add(tree.node)
        tree.children = [LineageTree(node) for node in sorted(neighbours(tree.node))]
        stack.extend(reversed(tree.children))
    return root
