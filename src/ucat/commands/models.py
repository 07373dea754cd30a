"""``ucat models``: the architectures and shipped models ucat can load."""
from __future__ import annotations

import argparse

import open_clip

from ..models.clip import BUILTIN_WEIGHTS, list_architectures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", default="", help="only names containing this text")


def run(args: argparse.Namespace) -> int:
    for name in list_architectures():
        if args.filter.lower() not in name.lower():
            continue
        tags = list(open_clip.list_pretrained_tags_by_model(name))
        if name in BUILTIN_WEIGHTS:
            tags = ["(shipped weights)"] + tags
        print(f"{name:32s} {', '.join(tags)}")
    return 0
