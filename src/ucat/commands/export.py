"""``ucat export``: a trained model in the open_clip Hugging Face layout, with a model card.

    ucat export runs/ucat --out hub/ucat-vitb32                 # a run folder (its selected model)
    ucat export runs/ucat/final.safetensors --out hub/x --eval runs/eval-ucat --license mit
    python -c "import open_clip; open_clip.create_model_and_transforms('local-dir:hub/x')"
"""
from __future__ import annotations

import argparse

from ..models.hub import export_hub


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a `ucat train` run folder or a checkpoint (.safetensors) it wrote")
    p.add_argument("--out", required=True, help="output folder (open_clip_config.json, open_clip_model.safetensors, README.md)")
    p.add_argument("--model", default=None, help="architecture (default: the one recorded in the checkpoint)")
    p.add_argument("--pretrained", default=None,
                   help="base weights the text tower comes from (default: as recorded in the checkpoint)")
    p.add_argument("--eval", dest="eval_dir", default=None, help="a `ucat eval --out` folder to quote in the card")
    p.add_argument("--license", default="other", help="license for the card's front matter (default %(default)s)")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")


def run(args: argparse.Namespace) -> int:
    out = export_hub(args.source, args.out, model=args.model, pretrained=args.pretrained, eval_dir=args.eval_dir,
                     force=args.force, license_id=args.license)
    print(f"exported to {out}; load it with open_clip.create_model_and_transforms('local-dir:{out}'); "
          f"push it with: hf upload ORG/NAME {out} .")
    return 0
