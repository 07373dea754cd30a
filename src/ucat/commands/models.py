"""``ucat models``: the architectures and shipped models ucat can load, and the published robust
checkpoints it knows by name (``--robust``)."""
from __future__ import annotations

import argparse

import open_clip

from ..models.clip import BUILTIN_WEIGHTS, list_architectures
from ..models.robust import ROBUST, describe, weights_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", default="", help="only names containing this text")
    parser.add_argument("--robust", action="store_true",
                        help="published adversarially robust checkpoints (usable as --model NAME in ucat eval)")


def run(args: argparse.Namespace) -> int:
    if args.robust:
        for c in ROBUST.values():
            if args.filter.lower() in c.name.lower():
                print(describe(c))
        print(f"\n.pt files are looked for in {weights_dir()} (set UCAT_WEIGHTS to change it); hf-hub "
              f"repositories in the Hugging Face cache.")
        return 0
    for name in list_architectures():
        if args.filter.lower() not in name.lower():
            continue
        tags = list(open_clip.list_pretrained_tags_by_model(name))
        if name in BUILTIN_WEIGHTS:
            tags = ["(shipped weights)"] + tags
        print(f"{name:32s} {', '.join(tags)}")
    return 0
