"""``ucat data``: list the datasets ucat knows, and check that they are where ucat expects them.

    ucat data list
    ucat data show pcam                   # class names, prompts, layout, source of the names
    ucat data check                       # the paper's 16 (zs16) under $UCAT_DATA
    ucat data check cifar10 imagenet --data-root ~/data
    ucat data check zs16 --data-root '/datasets/{dataset}' --no-load
    ucat data download cifar10 dtd --data-root ~/data   # what torchvision can fetch
"""
from __future__ import annotations

import argparse
import json

from ..data import COLLECTIONS, DATASETS, benchmark_meta, build_dataset, check_dataset, expand_datasets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="datasets, class counts, splits and collections")
    show = sub.add_parser("show", help="one dataset's class names, prompts, splits, layout and source")
    show.add_argument("name", help="a registry name, e.g. cifar10")
    show.add_argument("--templates", default="paper", help="'paper' (default) or 'ensemble'")
    chk = sub.add_parser("check", help="per dataset: found / missing, with the exact path and layout expected")
    chk.add_argument("names", nargs="*", default=["zs16"],
                     help="dataset names, collections (zs16), folders or CSV files (default: zs16)")
    chk.add_argument("--data-root", default=None,
                     help="folder holding the datasets ('{dataset}' is replaced by each name); default $UCAT_DATA")
    chk.add_argument("--split", default=None, help="split to check (default: each dataset's protocol split)")
    chk.add_argument("--no-load", action="store_true", help="only check paths; do not open the datasets")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    dl = sub.add_parser("download", help="let torchvision download datasets it can fetch into the data root")
    dl.add_argument("names", nargs="+", help="dataset names or collections")
    dl.add_argument("--data-root", default=None, help="where to put them ('{dataset}' allowed); default $UCAT_DATA")
    dl.add_argument("--split", default=None, help="split to fetch (default: each dataset's protocol split)")


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check(args)
    if args.action == "download":
        return _download(args)
    if args.action == "show":
        return _show(args.name, args.templates)
    if args.action in (None, "list"):
        return _list()
    raise ValueError(f"unknown action {args.action!r}; use 'ucat data list' or 'ucat data check'")


def _list() -> int:
    print(f"{'dataset':16s} {'classes':>7s}  {'default split':13s} {'splits':24s} loader")
    for key in DATASETS.names():
        info = DATASETS.get(key)
        n = str(info.num_classes) if info.num_classes else "-"
        loader = info.extra.get("loader", "generated" if not info.needs_root else "")
        print(f"{info.name:16s} {n:>7s}  {info.default_split:13s} {','.join(info.splits):24s} {loader}")
    print("\ncollections:")
    for name, members in COLLECTIONS.items():
        print(f"  {name}: {' '.join(members)}")
    print("\nAlso accepted as a dataset name: a folder (DIR/<class>/<image>) or a CSV file (path,label).")
    return 0


def _show(name: str, which: str) -> int:
    info = DATASETS.get(name)
    print(f"{info.name}: {info.num_classes or '?'} classes; default split {info.default_split!r} "
          f"(splits: {', '.join(info.splits)}); resize {info.extra.get('resize', '-')}")
    print(f"layout: {info.layout}\nget it: {info.how_to_get}")
    try:
        meta = benchmark_meta(info.name)
    except KeyError:
        print("(class names come from the data itself)")
        return 0
    templates = meta["ensemble"] if which == "ensemble" else [meta["template"]]
    if meta.get("prompts") and which != "ensemble":
        print("prompts (fixed sentences, one per class):")
        for c, p in zip(meta["classes"], meta["prompts"]):
            print(f"  {c}: {' | '.join(p)}")
    else:
        print(f"templates ({which}, {len(templates)}): " + " | ".join(templates))
    print(f"class names (source: {meta['source']}):")
    for i, c in enumerate(meta["classes"]):
        print(f"  {i:4d} {c}")
    return 0


def _download(args: argparse.Namespace) -> int:
    failed = []
    for name in expand_datasets(args.names):
        info = DATASETS.get(name)
        if not info.needs_root:
            print(f"{info.name}: generated, nothing to download")
            continue
        if not info.extra.get("downloadable"):
            print(f"{info.name}: cannot be downloaded automatically; {info.how_to_get}")
            failed.append(info.name)
            continue
        try:
            ds = build_dataset(name, root=args.data_root, split=args.split, download=True)
            print(f"{info.name}: ready ({len(ds)} images, split {ds.split!r})")
        except Exception as e:  # noqa: BLE001 - report every dataset, then fail at the end
            print(f"{info.name}: download failed: {type(e).__name__}: {e}")
            failed.append(info.name)
    return 1 if failed else 0


def _check(args: argparse.Namespace) -> int:
    reports = [check_dataset(n, root=args.data_root, split=args.split, load=not args.no_load)
               for n in expand_datasets(args.names)]
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        for r in reports:
            status = r["status"]
            if status == "found":
                extra = f" ({r['n_images']} images, {r['n_classes']} classes)" if "n_images" in r else ""
                print(f"{r['name']:16s} {r['split'] or '':6s} found     {r['path']}{extra}")
            elif status == "generated":
                print(f"{r['name']:16s} {r['split'] or '':6s} generated {r['detail']}")
            else:
                print(f"{r['name']:16s} {r['split'] or '':6s} {status.upper():9s} {r['detail']}")
                print(f"{'':24s}  layout: {r['layout']}")
                print(f"{'':24s}  get it: {r['how_to_get']}")
        bad = [r["name"] for r in reports if r["status"] in ("missing", "error")]
        ok = len(reports) - len(bad)
        print(f"\n{ok}/{len(reports)} datasets ready" + (f"; missing or broken: {', '.join(bad)}" if bad else ""))
    return 0 if all(r["status"] in ("found", "generated") for r in reports) else 1
