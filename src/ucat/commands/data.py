"""``ucat data``: list the datasets ucat knows, and check that they are where ucat expects them.

    ucat data list
    ucat data show pcam                   # class names, prompts, layout, source of the names
    ucat data classes imagenet            # the class names in label order, one per line (no data needed)
    ucat data classes imagenet --protocol ucat-paper --prompts   # the exact prompts the text head encodes
    ucat data check                       # the paper's 16 (zs16) under $UCAT_DATA
    ucat data check cifar10 imagenet --data-root ~/data
    ucat data check zs16 --data-root '/datasets/{dataset}' --no-load
    ucat data download cifar10 dtd --data-root ~/data   # what torchvision can fetch
    ucat data cache imagenet --data-root ~/data --split val --cache-dir ~/ucat-cache   # decode once (uint8 .npy)
    ucat data cache imagenet --data-root ~/data --split val --cache-dir ~/ucat-cache --check
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .. import protocols
from ..data import (CLASSNAME_KINDS, COLLECTIONS, DATASETS, benchmark_meta, benchmark_prompts, build_dataset,
                    check_dataset, classnames, expand_datasets)
from ..data.cache import build_cache, cache_files, cacheable, check_cache
from ..errors import UcatError
from ..models.clip import INTERPOLATIONS

DEFAULT_CACHE_DIR = "~/.cache/ucat/data-cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="datasets, class counts, splits and collections")
    show = sub.add_parser("show", help="one dataset's class names, prompts, splits, layout and source")
    show.add_argument("name", help="a registry name, e.g. cifar10")
    show.add_argument("--templates", default="paper", help="'paper' (default) or 'ensemble'")
    show.add_argument("--classnames", default="official", choices=CLASSNAME_KINDS,
                      help="'official' (the official UCAT code's names, default) or 'clip' (CLIP's curated names)")
    cls = sub.add_parser("classes", help="class names (or, with --prompts, the exact prompts) in label order, one per "
                                         "line; needs no data on disk")
    cls.add_argument("name", help="a registry name, e.g. imagenet")
    cls.add_argument("--protocol", default=None,
                     help="take --classnames and --templates from this evaluation protocol (e.g. ucat-paper)")
    cls.add_argument("--classnames", default=None, choices=CLASSNAME_KINDS,
                     help="'official' (default) or 'clip'; overrides the protocol's")
    cls.add_argument("--templates", default=None, help="'paper' (default) or 'ensemble'; overrides the protocol's")
    cls.add_argument("--prompts", action="store_true",
                     help="print every prompt the text head encodes (every template for every class, class by class)")
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
    _cache_arguments(sub)


def _cache_arguments(sub) -> None:
    c = sub.add_parser("cache", help="decode, resize and centre-crop a dataset once into a memory-mappable uint8 "
                                     "file (then: ucat train/eval --data-cache DIR)")
    c.add_argument("names", nargs="+", help="dataset names, collections (zs16), folders or CSV files")
    c.add_argument("--data-root", default=None, help="folder holding the datasets ('{dataset}' allowed); default $UCAT_DATA")
    c.add_argument("--split", default=None, help="split to cache (default: each dataset's protocol split; "
                                                 "training reads 'train')")
    c.add_argument("--image-size", type=int, default=224, help="the model's input size (default %(default)s)")
    c.add_argument("--interpolation", choices=INTERPOLATIONS, default="bilinear",
                   help="resize filter, as the evaluation or training will use (default %(default)s)")
    c.add_argument("--cache-dir", "--out", dest="cache_dir", default=DEFAULT_CACHE_DIR,
                   help="where the caches go (default %(default)s); give the same DIR to --data-cache")
    c.add_argument("--workers", type=int, default=None, help="decoding processes (default: the usable cores, at most 8)")
    c.add_argument("--check", action="store_true", help="only report whether each cache is fresh; exit 1 if any is not")
    c.add_argument("--force", action="store_true", help="rebuild even a fresh cache")


def _emit(lines) -> None:
    """Print lines; a reader that stops early (``| head``) ends the output quietly, as the Python docs advise."""
    try:
        sys.stdout.write("".join(f"{ln}\n" for ln in lines))
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check(args)
    if args.action == "download":
        return _download(args)
    if args.action == "cache":
        return _cache(args)
    if args.action == "show":
        return _show(args.name, args.templates, args.classnames)
    if args.action == "classes":
        return _classes(args)
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


def _protocol_settings(name: str) -> dict:
    """``classnames`` / ``templates`` of an evaluation protocol (``ucat.protocols``)."""
    getter = getattr(protocols, "get_protocol", None) or protocols.PROTOCOLS.get
    try:
        proto = getter(name)
    except KeyError:
        known = ", ".join(protocols.PROTOCOLS.names()) or "(none registered)"
        raise KeyError(f"--protocol {name!r} is not a known protocol; known: {known}") from None
    return {"classnames": getattr(proto, "classnames", "official"), "templates": getattr(proto, "templates", "paper")}


def _classes(args: argparse.Namespace) -> int:
    info = DATASETS.get(args.name)
    settings = _protocol_settings(args.protocol) if args.protocol else {"classnames": "official", "templates": "paper"}
    kind = args.classnames or settings["classnames"]
    templates = args.templates or settings["templates"]
    try:
        benchmark_meta(info.name)
    except KeyError:
        raise KeyError(f"dataset {info.name!r} takes its class names from the data itself; build it and read "
                       f".classes, or use 'ucat data check {info.name}'") from None
    if args.prompts:
        lines = [p for per_class in benchmark_prompts(info.name, kind, templates) for p in per_class]
    else:
        lines = classnames(info.name, kind)
    _emit(lines)
    return 0


def _show(name: str, which: str, kind: str = "official") -> int:
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
    names = classnames(info.name, kind)
    if meta.get("prompts") and which != "ensemble":
        print("prompts (fixed sentences, one per class):")
        for c, p in zip(names, meta["prompts"]):
            print(f"  {c}: {' | '.join(p)}")
    else:
        print(f"templates ({which}, {len(templates)}): " + " | ".join(templates))
    source = meta.get("clip_source", meta["source"]) if kind == "clip" else meta["source"]
    _emit([f"class names ({kind}; source: {source}):"] + [f"  {i:4d} {c}" for i, c in enumerate(names)])
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
                for note in r.get("warnings", []):
                    print(f"{'':24s}  warning: {note}")
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


def _cache(args: argparse.Namespace) -> int:
    """``ucat data cache``: one line per dataset (built, up to date, stale, generated or its error)."""
    bad = []
    for name in expand_datasets(args.names):
        label = f"{name} {args.split}" if args.split else name
        if name in DATASETS and not DATASETS.get(name).needs_root:
            print(f"{label}: generated in memory; nothing to cache")
            continue
        try:
            ds = build_dataset(name, root=args.data_root, split=args.split, image_size=args.image_size,
                               interpolation=args.interpolation)
            label = f"{name} {ds.split}" if getattr(ds, "split", None) else label
            line = _cache_one(ds, args)
        except (UcatError, OSError, ValueError, KeyError) as e:   # reported per dataset; the exit status says it
            line = f"error: {e}"
        print(f"{label}: {line}")
        if line.startswith(("error", "stale", "missing")):
            bad.append(name)
    if bad:
        print(f"\n{len(bad)} dataset(s) not cached: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


def _cache_one(ds, args: argparse.Namespace) -> str:
    if not cacheable(ds):
        return "generated in memory (or multi-label); nothing to cache"
    npy, _ = cache_files(ds, args.cache_dir)
    status, why, _meta = check_cache(ds, args.cache_dir)
    if args.check:
        return f"fresh {npy}" if status == "fresh" else f"{status} {npy}: {why}"
    if status == "fresh" and not args.force:
        return f"up to date {npy}"
    t0 = time.perf_counter()
    cached = build_cache(ds, args.cache_dir, num_workers=args.workers, progress=sys.stderr.isatty())
    shape = "x".join(str(v) for v in cached.meta["shape"][1:])
    size = Path(npy).stat().st_size
    size_text = f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"
    note = f"; {len(cached.unreadable)} unreadable image(s) skipped" if cached.unreadable else ""
    was = "" if status == "missing" else f" (was {status}: {why})" if status == "stale" else " (forced)"
    return (f"built {npy} ({len(cached)} images, {shape}, {size_text}, {time.perf_counter() - t0:.1f} s{note})"
            f"{was}; use it with --data-cache {args.cache_dir}")
