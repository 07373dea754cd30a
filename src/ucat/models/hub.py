"""Export a ucat model in the open_clip Hugging Face layout, with a model card.

The folder holds what ``open_clip.push_to_hf_hub.save_for_hf`` writes (open_clip 3.x,
push_to_hf_hub.py ``save_config_for_hf``/``save_for_hf``): ``open_clip_config.json``
(``model_cfg`` + ``preprocess_cfg``) and ``open_clip_model.safetensors`` (the full CLIP state
dict), plus a ``README.md`` model card with hub front matter. It loads with
``open_clip.create_model_and_transforms("local-dir:DIR")`` and, once uploaded, with
``"hf-hub:ORG/NAME"``. No tokenizer files are written: these CLIPs use open_clip's bundled BPE
tokenizer (a ``model_cfg`` without ``hf_tokenizer_name``), which ``get_tokenizer("local-dir:DIR")``
builds offline; open_clip's own push substitutes the ``openai/clip-vit-large-patch14`` HF
tokenizer files, which cannot be fetched offline and encode the same vocabulary.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import open_clip
import yaml

from ..errors import ConfigError
from ..io import atomic_write_text, dumps_json
from ..units import EPS_UNIT
from .checkpoint import export_open_clip, load_vision_weights, read_metadata
from .clip import load_clip, register_model_configs

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"


def resolve_source(source: str | os.PathLike) -> Dict[str, Any]:
    """A checkpoint file, or a ``ucat train`` run folder (its selected export), with what is known
    of its training: the file's metadata header, the run's config.yaml and summary.json."""
    src = Path(source)
    run: Optional[Path] = None
    if src.is_dir():
        run = src
        summary = _read_json(src / "summary.json")
        chosen = summary.get("export") or summary.get("final")
        src = Path(chosen) if chosen else src / "final.safetensors"
        if not src.is_absolute() and not src.is_file():
            src = run / src.name
    elif (src.parent / "config.yaml").is_file():
        run = src.parent
    if not src.is_file():
        raise FileNotFoundError(f"{source}: no checkpoint there; give a .safetensors file written by `ucat train` "
                                f"or its run folder (holding final.safetensors)")
    info: Dict[str, Any] = {"checkpoint": str(src), "metadata": read_metadata(src), "config": {}, "summary": {}}
    if run is not None:
        info["run"] = str(run)
        cfg_file = run / "config.yaml"
        if cfg_file.is_file():
            info["config"] = yaml.safe_load(cfg_file.read_text()) or {}
        info["summary"] = _read_json(run / "summary.json")
    return info


def _read_json(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _facts(info: Dict[str, Any], model: Optional[str], pretrained: Optional[str]) -> Dict[str, Any]:
    """What the card states, from the checkpoint header first and the run's config second."""
    meta, cfg = info["metadata"], info["config"]
    get = lambda key, default=None: meta.get(key, cfg.get(key, default))  # noqa: E731
    arch = model or get("arch") or cfg.get("model")
    if not arch:
        raise ConfigError("model", f"is unknown for {info['checkpoint']} (no 'arch' in its metadata): "
                                   f"give the architecture it was trained from")
    return {"arch": arch, "pretrained": pretrained if pretrained is not None else get("pretrained"),
            "method": get("method", "unknown"), "method_options": get("method_options", {}),
            "eps": get("eps"), "attack": get("attack"), "attack_steps": get("attack_steps"),
            "attack_step_size": get("attack_step_size"), "data": get("data"),
            "steps": meta.get("step", info["summary"].get("steps")), "seed": get("seed")}


def eval_summary(eval_dir: str | os.PathLike) -> Dict[str, Any]:
    """The Markdown summary of a ``ucat eval`` output folder and the protocol it ran under."""
    d = Path(eval_dir)
    md = d / "summary.md"
    if not md.is_file():
        raise FileNotFoundError(f"{d}: no summary.md there; give the --out folder of a finished `ucat eval`")
    cfg = _read_json(d / "eval_config.json").get("config", {})
    return {"markdown": md.read_text(), "protocol": cfg.get("protocol", "not recorded")}


def model_card(facts: Dict[str, Any], evaluation: Optional[Dict[str, Any]] = None,
               license_id: str = "other", repo_hint: str = "ORG/NAME") -> str:
    """README.md with Hugging Face front matter (library_name open_clip, zero-shot classification)."""
    base = f"{facts['arch']}" + (f" ({facts['pretrained']})" if facts["pretrained"] else "")
    eps = "-" if facts["eps"] is None else f"{facts['eps']:g}/255 (L-inf)"
    front = {"library_name": "open_clip", "pipeline_tag": "zero-shot-image-classification", "license": license_id,
             "tags": ["clip", "adversarial-robustness", "ucat", f"method-{facts['method']}"]}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
             f"# {facts['method']} fine-tuned {facts['arch']}", "",
             f"The image encoder of `{base}` adversarially fine-tuned with **{facts['method']}** by "
             f"ucat (only the image tower was trained; the text tower is the base model's).", "",
             "| | |", "|---|---|",
             f"| base model | `{base}` |", f"| method | `{facts['method']}` {json.dumps(facts['method_options'])} |",
             f"| training attack | {facts['attack'] or '-'}, {facts['attack_steps'] or '-'} steps of "
             f"{facts['attack_step_size'] if facts['attack_step_size'] is not None else '-'}/255, eps {eps} |",
             f"| training data | {facts['data'] or '-'} |", f"| optimizer steps | {facts['steps'] or '-'} |",
             f"| seed | {facts['seed'] if facts['seed'] is not None else '-'} |", "",
             "## Use", "", "```python", "import open_clip",
             f"model, _, preprocess = open_clip.create_model_and_transforms('hf-hub:{repo_hint}')",
             f"tokenizer = open_clip.get_tokenizer('hf-hub:{repo_hint}')", "```", "",
             f"Perturbation sizes are in {EPS_UNIT} of the [0,1] pixel range.", ""]
    if evaluation is not None:
        lines += [f"## Evaluation (ucat eval, protocol `{evaluation['protocol']}`)", "",
                  evaluation["markdown"].replace("# ucat eval summary", "").strip(), ""]
    lines += ["## Upload", "", "Pushing is your step, e.g. with the Hugging Face CLI:", "", "```bash",
              f"hf upload {repo_hint} <this folder> .", "```", ""]
    return "\n".join(lines)


def export_hub(source: str | os.PathLike, out: str | os.PathLike, model: Optional[str] = None,
               pretrained: Optional[str] = None, eval_dir: Optional[str] = None, force: bool = False,
               license_id: str = "other") -> Path:
    """Write ``out`` in the open_clip HF layout from a ``ucat train`` checkpoint or run folder.

    Refuses an existing ``out`` unless ``force``; the folder is built beside ``out`` and moved into
    place at the end, so an interrupted export never leaves a half-written folder.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; choose another output folder or pass force (--force) to replace it")
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{out} is a file, not a folder")
    info = resolve_source(source)
    facts = _facts(info, model, pretrained)
    evaluation = eval_summary(eval_dir) if eval_dir else None
    if info["metadata"].get("format") == "open_clip":     # a full CLIP state dict: both towers as trained
        bundle = load_clip(facts["arch"], info["checkpoint"])
    else:                                                  # image tower only: on top of its base model
        bundle = load_clip(facts["arch"], facts["pretrained"])
        load_vision_weights(bundle, info["checkpoint"])
    register_model_configs()
    model_cfg = open_clip.get_model_config(facts["arch"])
    if model_cfg is None:
        raise ConfigError("model", f"{facts['arch']!r} has no open_clip model config to export")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        export_open_clip(bundle.model, tmp / WEIGHTS_NAME, {"exported_from": info["checkpoint"], **facts})
        atomic_write_text(tmp / CONFIG_NAME, dumps_json({
            "model_cfg": model_cfg,
            "preprocess_cfg": {"mean": list(bundle.mean), "std": list(bundle.std)}}))
        atomic_write_text(tmp / "README.md", model_card(facts, evaluation, license_id))
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
