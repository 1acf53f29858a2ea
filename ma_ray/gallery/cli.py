"""`ma-ray models list|describe|versions|lineage` and `ma-ray models alias set|history|rollback`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ma_ray.config import load_settings
from ma_ray.gallery.registry import ANY, Gallery
from ma_ray.text_table import format_table


@contextmanager
def _gallery() -> Iterator[Gallery]:
    gallery = Gallery.from_settings(load_settings())
    try:
        yield gallery
    finally:
        gallery.close()


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _expected(text: str) -> Any:
    if text in ("none", "unset"):
        return None
    if text == "any":
        return ANY
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--expected takes a version number, 'none' (unset) or 'any', not {text!r}")
    return int(text)


def cmd_models(args: argparse.Namespace) -> int:
    handlers = {"list": _list, "describe": _describe, "versions": _versions, "lineage": _lineage, "alias": _alias}
    with _gallery() as gallery:
        return handlers[args.verb](gallery, args)


def _need_model(args: argparse.Namespace) -> str:
    if not args.model:
        raise ValueError(f"`ma-ray models {args.verb}` needs a model name")
    model: str = args.model
    return model


def _list(gallery: Gallery, args: argparse.Namespace) -> int:
    models = gallery.models()
    if args.json:
        _print([m.model_dump(mode="json") for m in models])
        return 0
    rows = [(m.name, m.owner, m.tier, m.framework, gallery.store.latest_version(m.name), m.description) for m in models]
    print(format_table(rows, ["model", "owner", "tier", "framework", "versions", "description"]))
    return 0


def _describe(gallery: Gallery, args: argparse.Namespace) -> int:
    model = gallery.model(_need_model(args))
    aliases = gallery.aliases(model.name)
    latest = gallery.store.latest_version(model.name)
    if args.json:
        _print({"model": model.model_dump(mode="json"), "aliases": aliases, "latest_version": latest})
        return 0
    print(f"{model.name}  (owner {model.owner}, tier {model.tier}, {model.framework}), {latest} version(s)")
    if model.description:
        print(model.description)
    if model.tags:
        print("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(model.tags.items())))
    print(format_table(sorted(aliases.items()), ["alias", "version"]))
    return 0


def _versions(gallery: Gallery, args: argparse.Namespace) -> int:
    versions = gallery.versions(_need_model(args))
    if args.json:
        _print([v.model_dump(mode="json") for v in versions])
        return 0
    by_version: dict[int, list[str]] = {}
    for alias, number in gallery.aliases(args.model).items():
        by_version.setdefault(number, []).append(alias)
    rows = [
        (
            v.version,
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            v.created_by,
            v.flavor,
            v.size_bytes,
            ", ".join(f"{k}={m:.4g}" for k, m in sorted(v.metrics.items())),
            ", ".join(sorted(by_version.get(v.version, []))),
        )
        for v in versions
    ]
    print(format_table(rows, ["version", "created (UTC)", "by", "flavor", "bytes", "metrics", "aliases"]))
    return 0


def _lineage(gallery: Gallery, args: argparse.Namespace) -> int:
    version = gallery.version(_need_model(args), args.ref or "latest")
    data = {
        "model": version.model_id,
        "features": list(version.signature.features),
        "transforms": version.signature.transforms,
        "training_snapshot": version.training_snapshot,
        "training_job_id": version.training_job_id,
    }
    if args.json:
        _print(data)
        return 0
    print(f"model:{version.model_id}")
    print(f"  trained by job {version.training_job_id or '-'} on snapshot {version.training_snapshot or '-'}")
    rows = [(ref, "") for ref in version.signature.features]
    rows += [(name, expression) for name, expression in version.signature.transforms.items()]
    print(format_table(rows, ["input", "transform"]))
    return 0


def _alias(gallery: Gallery, args: argparse.Namespace) -> int:
    model = _need_model(args)
    if not args.alias:
        raise ValueError("`ma-ray models alias` needs a model and an alias, e.g. `models alias set eta production 3`")
    if args.action == "history":
        history = gallery.alias_history(model, args.alias)
        if args.json:
            _print([e.model_dump(mode="json") for e in history])
        else:
            rows = [(e.seq, e.at.isoformat(), e.by, e.from_version, e.to_version, e.reason) for e in history]
            print(format_table(rows, ["#", "at (UTC)", "by", "from", "to", "reason"]))
        return 0
    if args.action == "set":
        if args.version is None:
            raise ValueError("`models alias set` needs a version: models alias set <model> <alias> <version>")
        event = gallery.set_alias(model, args.alias, args.version, args.expected, args.reason, args.wait)
    else:
        event = gallery.rollback(model, args.alias, wait_s=args.wait)
    if args.json:
        _print(event.model_dump(mode="json"))
    else:
        print(f"{model}:{args.alias}: {event.from_version or 'unset'} -> {event.to_version} (change #{event.seq})")
    return 0


def add_commands(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = nouns.add_parser("models", help="Gallery: registered models, versions, lineage and aliases")
    verbs = models.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("list", "every registered model"),
        ("describe", "a model, its aliases and version count"),
        ("versions", "a model's versions"),
        ("lineage", "what a version reads (features, transforms) and was trained on"),
    ):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("model", nargs="?" if verb == "list" else None)
        if verb == "lineage":
            sub.add_argument("ref", nargs="?", help="version number or alias (default: latest)")
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(handler=cmd_models)

    alias = verbs.add_parser("alias", help="set, show the history of, or roll back an alias")
    alias.add_argument("action", choices=["set", "history", "rollback"])
    alias.add_argument("model")
    alias.add_argument("alias")
    alias.add_argument("version", nargs="?", type=int, help="set: the version to point at")
    alias.add_argument(
        "--expected", type=_expected, default=ANY, help="set: compare-and-set; a version, 'none' (unset) or 'any'"
    )
    alias.add_argument("--reason", default="", help="set: recorded in the alias history")
    alias.add_argument("--wait", type=float, help="also wait up to this many seconds for every replica to acknowledge")
    alias.add_argument("--json", action="store_true")
    alias.set_defaults(handler=cmd_models)
