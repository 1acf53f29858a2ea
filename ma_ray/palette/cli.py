"""`ma-ray apply`, `ma-ray features list|describe` and `ma-ray lineage upstream|downstream`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

from ma_ray.config import load_settings
from ma_ray.palette.lineage import Direction
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.registry import FeatureRegistry
from ma_ray.palette.repository import load_repository
from ma_ray.text_table import format_table


@contextmanager
def _registry() -> Iterator[FeatureRegistry]:
    store = open_meta_store(load_settings())
    try:
        yield FeatureRegistry(store)
    finally:
        store.close()


def cmd_apply(args: argparse.Namespace) -> int:
    repo = load_repository(args.repo)
    with _registry() as registry:
        report = registry.apply(repo, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    verb = "would apply" if args.dry_run else "applied"
    print(
        f"{verb} catalog '{report.catalog}': {len(report.created)} new, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged group(s); {report.lineage_edges} lineage edges"
    )
    rows = [(g, "new") for g in report.created] + [(g, "new version") for g in report.updated]
    rows += [(g, "unchanged") for g in report.unchanged]
    print(format_table(rows, ["group", "change"]))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    with _registry() as registry:
        if args.verb == "list":
            return _list(registry, args)
        return _describe(registry, args)


def _list(registry: FeatureRegistry, args: argparse.Namespace) -> int:
    rows = registry.features(args.catalog)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    table = [(r.ref, r.type, r.source, r.version, r.tier, r.ttl_s, "yes" if r.derived else "") for r in rows]
    print(format_table(table, ["feature", "type", "source", "version", "tier", "ttl_s", "derived"]))
    return 0


def _describe(registry: FeatureRegistry, args: argparse.Namespace) -> int:
    if not args.name or args.name.count(".") != 1:
        raise ValueError("describe takes <catalog>.<group>, e.g. rideshare.driver_stats")
    catalog, group_name = args.name.split(".")
    version, group = registry.group(catalog, group_name, args.version)
    if args.json:
        print(json.dumps({"version": version, "group": group.model_dump(mode="json")}, indent=2))
        return 0
    history = registry.versions(catalog, group_name)
    print(
        f"{catalog}.{group.name}  version {version} of {len(history)}  ({group.source}, tier {group.tier}, "
        f"ttl {group.ttl_s}s, owner {group.owner})"
    )
    if group.description:
        print(group.description)
    rows = [(f.name, f.type, f.default, f.expression or "", f.description) for f in group.features]
    print(format_table(rows, ["feature", "type", "default", "expression", "description"]))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    with _registry() as registry:
        tree = registry.lineage(args.node, Direction(args.direction))
    print(json.dumps(tree.as_json(), indent=2) if args.json else tree.render())
    return 0


def add_commands(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apply = nouns.add_parser("apply", help="validate and register a feature repository (folder, .yaml or .py)")
    apply.add_argument("repo")
    apply.add_argument("--dry-run", action="store_true", help="validate only, write nothing")
    apply.add_argument("--json", action="store_true")
    apply.set_defaults(handler=cmd_apply)

    features = nouns.add_parser("features", help="list registered features or describe a group")
    features.add_argument("verb", choices=["list", "describe"])
    features.add_argument("name", nargs="?", help="describe: <catalog>.<group>")
    features.add_argument("--catalog", help="list: only this catalog")
    features.add_argument("--version", type=int, help="describe: this schema version (default: latest)")
    features.add_argument("--json", action="store_true")
    features.set_defaults(handler=cmd_features)

    lineage = nouns.add_parser("lineage", help="what a node depends on, or what depends on it")
    lineage.add_argument("direction", choices=[d.value for d in Direction])
    lineage.add_argument("node", help="a feature ref, group:<catalog>:<group>, raw:<table> or model:<name>:<v>")
    lineage.add_argument("--json", action="store_true")
    lineage.set_defaults(handler=cmd_lineage)
