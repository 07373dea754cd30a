"""``ucat data``: list the datasets ucat knows, and check that they are where ucat expects them.

    ucat data list
    ucat data check                       # the paper's 16 (zs16) under $UCAT_DATA
    ucat data check cifar10 imagenet --data-root ~/data
    ucat data check zs16 --data-root '/datasets/{dataset}' --no-load
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="datasets, class counts, splits and collections")
    chk = sub.add_parser("check", help="per dataset: found / missing, with the exact path and layout expected")
    chk.add_argument("names", nargs="*", default=["zs16"],
                     help="dataset names, collections (zs16), folders or CSV files (default: zs16)")
    chk.add_argument("--data-root", default=None,
                     help="folder holding the datasets ('{dataset}' is replaced by each name); default $UCAT_DATA")
    chk.add_argument("--split", default=None, help="split to check (default: each dataset's protocol split)")
    chk.add_argument("--no-load", action="store_true", help="only check paths; do not open the datasets")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check(args)
    if args.action in (None, "list"):
        return _list()
    raise ValueError(f"unknown action {args.action!r}; use 'ucat data list' or 'ucat data check'")


def _list() -> int:
    from . import COLLECTIONS, DATASETS
    from .build import _ensure_registered

    _ensure_registered()
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


def _check(args: argparse.Namespace) -> int:
    from .build import check_dataset, expand_datasets

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
