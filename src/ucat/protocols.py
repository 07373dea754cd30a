"""Named evaluation protocols: every setting of a published evaluation, with its source.

``ucat eval --protocol NAME`` takes each flag's default from the protocol; flags a user sets
override it and are recorded in every result (``protocol`` and ``protocol_overrides``).
The settings, their file:line sources and the remaining differences are documented in
``docs/protocols.md``. Sources were read at VivienLu/UCAT@e3bea1d, chs20/RobustVLM@7de10ee and
fra31/auto-attack@a392200 (the AutoAttack commit UCAT's requirements.txt pins).

Interface (the evaluator codes against it)::

    get_protocol("ucat-paper")       # -> Protocol; unknown name -> KeyError listing the known ones
    protocol_defaults("ucat-paper")  # -> {EvalConfig field: value}
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .registry import Registry

#: the EvalConfig fields a protocol sets (``protocol_defaults`` returns exactly these keys)
DEFAULT_KEYS = ("datasets", "attacks", "eps", "steps", "step_size", "restarts", "n_samples", "attack_options",
                "classnames", "templates", "interpolation", "uncertainty_alpha")


@dataclass(frozen=True)
class Protocol:
    """One published evaluation protocol. Sizes in 1/255 units.

    Fields that a dataset builder needs are ``classnames`` ("official": the names and prompts the
    official code encodes; "clip": CLIP's curated names), ``templates`` ("paper": each dataset's
    prompt as the official UCAT code writes it; "ensemble": CLIP's template ensemble) and
    ``interpolation`` ("bilinear" or "bicubic", for the resize of every dataset); the evaluator
    reads the rest. ``differences`` lists what ucat still does differently, each with its reason.
    """

    name: str
    description: str
    datasets: Tuple[str, ...]
    attacks: Tuple[str, ...]
    eps: Tuple[float, ...]
    steps: int
    step_size: Optional[float]                 # 1/255 units; None = eps
    restarts: int = 1
    n_samples: Optional[int] = None            # per dataset; None = the whole split
    classnames: str = "official"               # "official" | "clip"
    templates: str = "paper"                   # "paper" | "ensemble"
    interpolation: str = "bilinear"            # "bilinear" | "bicubic"
    uncertainty_alpha: str = "official"        # how the uncertainty columns build alpha (see docs/protocols.md)
    attack_options: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    sources: Dict[str, str] = field(default_factory=dict)   # setting -> "repo file:line" or paper section
    differences: Tuple[str, ...] = ()          # remaining differences from the official code, with reasons
    published: bool = True                     # False for ucat's own (the "quick" first look)


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; KeyError naming the known protocols otherwise."""
    return PROTOCOLS.get(name)


def protocol_defaults(name: str) -> Dict[str, Any]:
    """{EvalConfig field: value} for protocol ``name`` (lists and dicts are fresh copies)."""
    p = get_protocol(name)
    values: Dict[str, Any] = {key: getattr(p, key) for key in DEFAULT_KEYS}
    for key in ("datasets", "attacks", "eps"):
        values[key] = list(values[key])
    values["eps"] = [float(e) for e in values["eps"]]
    values["attack_options"] = copy.deepcopy(p.attack_options)
    return values


def list_protocols() -> List[str]:
    return PROTOCOLS.names()


# ----------------------------------------------------------------------------- quick (ucat's first look)

PROTOCOLS.register("quick", Protocol(
    name="quick",
    description="ucat's default first look: PGD-10 at 1/255 (step 1/255) on the procedural world suite. "
                "Not a published protocol; numbers are not comparable with any paper's table.",
    datasets=("world-suite",), attacks=("pgd",), eps=(1.0,), steps=10, step_size=1.0, restarts=1,
    classnames="official", templates="paper", interpolation="bilinear", uncertainty_alpha="official",
    published=False,
    sources={
        "datasets": "ucat: the procedural world (needs no download)",
        "attacks": "ucat: PGD only, the cheapest informative attack",
        "eps": "VivienLu/UCAT main.sh (TESTEPS=1), as ucat-paper",
        "steps": "ucat: 10 instead of the paper's 100, for speed",
        "step_size": "VivienLu/UCAT main.py:56,139 (1/255 at every eps), as ucat-paper",
        "restarts": "VivienLu/UCAT attacks.py:18-61 (one run), as ucat-paper",
        "n_samples": "ucat: the whole (generated) split",
        "attack_options": "ucat: each attack's defaults",
        "classnames": "as ucat-paper (the world's own class names)",
        "templates": "as ucat-paper",
        "interpolation": "VivienLu/UCAT utils.py:139-147 (torchvision's default, bilinear), as ucat-paper",
        "uncertainty_alpha": "VivienLu/UCAT main.py:496,505,583, as ucat-paper",
    }))

# ----------------------------------------------------------------------------- ucat-paper (Table 16)

_UCAT = "VivienLu/UCAT"
PROTOCOLS.register("ucat-paper", Protocol(
    name="ucat-paper",
    description="The official UCAT single-label evaluation (Lu et al., arXiv 2512.12997, Table 16): the 16 "
                "zero-shot datasets, PGD-100 / CW-100 / AutoAttack (APGD-CE + APGD-DLR) at eps 1/255 with "
                "step 1/255, the official class names, prompts and bilinear resize, on the whole test split.",
    datasets=("tinyimagenet", "cifar10", "cifar100", "stl10", "sun397", "food101", "oxfordpet", "flowers102", "dtd",
              "eurosat", "fgvc-aircraft", "imagenet", "caltech101", "caltech256", "stanfordcars", "pcam"),
    attacks=("pgd", "cw", "aa-paper"), eps=(1.0,), steps=100, step_size=1.0, restarts=1, n_samples=None,
    classnames="official", templates="paper", interpolation="bilinear", uncertainty_alpha="official",
    attack_options={"pgd": {"random_start": True},
                    "cw": {"random_start": True, "kappa": 50.0, "kappa_scale": None},
                    "aa-paper": {"n_iter": 100}},
    sources={
        "datasets": f"arXiv 2512.12997 Table 16 (column order); {_UCAT} main.py:235-236 (the same 16, another "
                    "order), main.sh (evaluation loop)",
        "attacks": f"{_UCAT} main.py:514-575, main.sh ('for ATTACK in pgd CW autoattack CAA a3'); Table 16 "
                   "reports PGD-100, CW-100 and AA only",
        "eps": f"{_UCAT} main.sh (TESTEPS=1), main.py:54,137; the {{1,2,4}}/255 sweep is the COCO multi-label run "
               "only (main.sh, main-multilabel.py)",
        "steps": f"{_UCAT} main.sh (TESTSTEPS=100), main.py:55",
        "step_size": f"{_UCAT} main.py:56 (--test_stepsize 1), 139 (/255), 449, 515-516, 524-525",
        "restarts": f"{_UCAT} attacks.py:18-61, 64-119 (one run; the restarts argument is unused)",
        "random_start": f"{_UCAT} attacks.py:21-23, 32 (uniform in [-eps, eps], clamped to [0,1]); CW 68-80",
        "cw_kappa": f"{_UCAT} attacks.py:98-102 (-sum relu(z_y - max_j!=y z_j + 50) on the raw logits)",
        "aa_composition": f"{_UCAT} attacks.py:121-132 (version='standard', attacks_to_run overridden), "
                          "main.py:457-461 (apgd-ce + apgd-dlr; apgd-ce alone on PCAM); fra31/auto-attack@a392200 "
                          "autoattack.py:33-49 (n_iter 100), 302-319 (standard: APGD n_restarts 1)",
        "attack_options": f"{_UCAT} attacks.py:21-23 (random start), 98-102 (kappa 50, raw logits); "
                          "fra31/auto-attack@a392200 autoattack.py:33-36 (n_iter 100)",
        "n_samples": f"{_UCAT} utils.py:164-232 (whole datasets, no subset)",
        "splits": f"{_UCAT} utils.py:164-232 (test; val for TinyImageNet/ImageNet; the whole of EuroSAT, "
                  "Caltech101/256, SUN397)",
        "classnames": f"{_UCAT} utils.py:19-22 (refine_classname), 253-280 (get_text_prompts_val), "
                      "imagenet_classes_names.txt, tinyimagenet_classes_name.txt, replace/datasets/*.py "
                      "(clip_prompts; fgvc_aircraft.py:104-115 'Boeing ' prefix)",
        "templates": f"{_UCAT} main.py:226 ('This is a photo of a {{}}'); dtd.py:43, oxford_iiit_pet.py:49, "
                     "flowers102.py:69, food101.py:42, fgvc_aircraft.py:50, stanford_cars.py:39, eurosat.py:40, "
                     "caltech.py:175 (Caltech256), pcam.py:69-72 (two fixed sentences), all in replace/datasets/",
        "interpolation": f"{_UCAT} utils.py:139-147 (transforms.Resize without interpolation= : bilinear)",
        "resize": f"{_UCAT} utils.py:139-147 (Resize((224,224)) for CIFAR-10/100 and STL10, utils.py:167-181; "
                  "Resize(256) + CenterCrop(224) for the rest); models/model.py:17-21 (bicubic upsample to 224, "
                  "an identity at 224, then CLIP's normalization)",
        "uncertainty_alpha": f"{_UCAT} main.py:496, 505, 583 (alpha = 1e-6 + exp(softplus(logits)))",
        "precision": f"{_UCAT} main.py:489 (torch.cuda.amp.autocast around clean logits, attacks and "
                     "adversarial logits)",
        "batch_size": f"{_UCAT} main.py:249 (2 x --batch_size), main.sh (BATCHSIZE=256)",
        "seed": f"{_UCAT} main.py:146-153 (seed 0); AutoAttack seed None = time.time() (fra31/auto-attack "
                "autoattack.py get_seed)",
    },
    differences=(
        "precision: the official run evaluates under fp16 autocast (main.py:489); ucat defaults to fp32 "
        "(deterministic, and attack gradients do not underflow); pass --precision fp16 to match",
        "AutoAttack seed: the official AutoAttack seeds from the clock (seed=None); ucat seeds 0 so reruns agree",
        "AutoAttack batch: the official code attacks batches of 512 (main.py:249); AutoAttack's random starts "
        "depend on the batch, so per-image results differ with ucat's --batch-size, the expectation does not",
        "targets: with fewer classes than 10 ucat caps AutoAttack's target classes at C-1 (the official "
        "n_target_classes=9 needs >= 10 classes); aa-paper uses none, so ucat-paper is unaffected",
        "ImageNet text features: the official code encodes the 1000 prompts once, caches them as JSON and "
        "reads them back in fp16 (models/model.py:42-61, 114-136); ucat encodes them in fp32 on every run "
        "(the text tower is frozen, so only the rounding differs)",
    )))

# ----------------------------------------------------------------------------- robustvlm (FARE's CLIP_benchmark)

_RV = "chs20/RobustVLM"
_CB = f"{_RV} CLIP_benchmark"
PROTOCOLS.register("robustvlm", Protocol(
    name="robustvlm",
    description="FARE's zero-shot robustness protocol (Schlarmann et al., ICML 2024) as the RobustVLM "
                "CLIP_benchmark fork runs it: AutoAttack APGD-CE (5 restarts) + APGD-T at eps 2/255 and 4/255, "
                "1000 samples per dataset, CLIP's class names and template ensemble, ImageNet plus 13 datasets.",
    datasets=("imagenet", "cifar10", "stl10", "cifar100", "stanfordcars", "caltech101", "oxfordpet", "flowers102",
              "dtd", "eurosat", "fgvc-aircraft", "pcam", "imagenet-r", "imagenet-sketch"),
    attacks=("aa-robustvlm",), eps=(2.0, 4.0), steps=100, step_size=1.0, restarts=1, n_samples=1000,
    classnames="clip", templates="ensemble", interpolation="bicubic", uncertainty_alpha="official",
    attack_options={"aa-robustvlm": {"n_iter": 100}},
    sources={
        "datasets": f"{_CB}/benchmark/datasets.txt:1-13; ImageNet: {_RV} README.md:288-291, "
                    "CLIP_eval/clip_robustbench.py:100-104",
        "attacks": f"{_CB}/bash/run_benchmark_adv.sh:14 (--attack aa), "
                   "clip_benchmark/metrics/zeroshot_classification.py:128-136",
        "aa_composition": f"{_CB}/clip_benchmark/metrics/zeroshot_classification.py:129 (apgd-ce + apgd-t; "
                          f"apgd-ce alone with 2 classes), 130-136 (version='custom'); {_RV} "
                          "autoattack/autoattack.py:34-36 (APGD n_restarts 5, n_iter 100), 47-49 (APGD-T "
                          "n_restarts 1, 9 target classes); CLIP_eval/clip_robustbench.py:149, 289-292 (ImageNet)",
        "eps": f"{_CB}/bash/run_benchmark_adv.sh:6 (EPS=2); {_RV} README.md:138, 196 (results at 2/255 and "
               "4/255); zeroshot_classification.py:126 (/255)",
        "steps": f"{_CB}/clip_benchmark/cli.py:62 (iterations_adv 100; unused, zeroshot_classification.py:127: "
                 f"AutoAttack's own 100, {_RV} autoattack/autoattack.py:15)",
        "step_size": "not used: AutoAttack sets its own (APGD alpha 2 x eps, autoattack/autopgd_base.py:296-301)",
        "restarts": f"{_RV} autoattack/autoattack.py:34-36, 47-49 (inside aa-robustvlm: APGD-CE 5, APGD-T 1)",
        "attack_options": f"{_RV} autoattack/autoattack.py:15 (iterations_apgd=100)",
        "n_samples": f"{_CB}/bash/run_benchmark_adv.sh:8 (SAMPLES=1000), clip_benchmark/cli.py:55, 257-258, "
                     "zeroshot_classification.py:141-147; ImageNet: CLIP_eval/clip_robustbench.py:34 (5000)",
        "splits": f"{_CB}/clip_benchmark/cli.py:27 (split test), bash/run_benchmark_adv.sh:11 (the clip-benchmark "
                  "webdatasets)",
        "classnames": f"{_CB}/clip_benchmark/datasets/builder.py:60-88 (en_classnames.json, the wds "
                      "classnames.txt)",
        "templates": f"{_CB}/clip_benchmark/datasets/builder.py:74-88 (en_zeroshot_classification_templates.json), "
                     "clip_benchmark/metrics/zeroshot_classification.py:40-55 (mean of normalized embeddings, "
                     "renormalized); ImageNet: CLIP_eval/clip_robustbench.py:36, 208-222",
        "interpolation": f"{_CB}/clip_benchmark/cli.py:231-237 (open_clip's preprocessing: Resize(224, bicubic) + "
                         "CenterCrop(224); CIFAR/STL10: native resolution, bicubic Resize(224) inside the model)",
        "resize": f"{_CB}/clip_benchmark/cli.py:231-237",
        "uncertainty_alpha": "not part of the protocol (no uncertainty columns): ucat adds them with the "
                             "official UCAT form, VivienLu/UCAT main.py:496,505,583",
        "logit_scale": f"{_CB}/clip_benchmark/metrics/zeroshot_classification.py:118 (100)",
        "precision": f"{_CB}/clip_benchmark/cli.py:32 (amp off: fp32)",
        "batch_size": f"{_CB}/bash/run_benchmark_adv.sh:15 (50)",
        "seed": f"{_CB}/clip_benchmark/cli.py:39 (0, for the sample shuffle); AutoAttack seed None = time",
    },
    differences=(
        "samples: the fork takes the first 1000 of a seeded 10000-buffer webdataset shuffle (cli.py:257-258); "
        "ucat draws a seeded random subset of 1000 from its own copy of each split: different images, same size",
        "ImageNet: the fork evaluates 5000 RobustBench images (clip_robustbench.py:34); ucat uses n_samples "
        "(1000) for every dataset; pass --datasets imagenet --n-samples 5000 to match the count",
        "splits: the fork reads the clip-benchmark webdatasets (VTAB splits for caltech101, pets, flowers, dtd, "
        "eurosat, pcam); ucat reads each release's own test split (the official UCAT splits)",
        "CIFAR/STL10 resolution: the fork attacks at the native resolution (32 or 96 px) and upsamples inside "
        "the model (cli.py:231-234); ucat resizes to the model's input first, so the eps-ball is in 224 px space",
        "AutoAttack seed: the fork seeds from the clock (seed=None); ucat seeds 0",
        "classes: ucat caps APGD-T's 9 target classes at C-1 and drops APGD-T below 4 classes (the fork would "
        "fail there); none of the protocol's datasets has 3 to 9 classes",
    )))

# ----------------------------------------------------------------------------- ucat-paper-multilabel (COCO)

PROTOCOLS.register("ucat-paper-multilabel", Protocol(
    name="ucat-paper-multilabel",
    description="The official UCAT multi-label evaluation (Lu et al., MS-COCO tables): COCO 2017 val, "
                "BCE-PGD and multi-label CW, 100 steps of 1/255 at eps 1, 2 and 4/255; mAP and P/R/F1 of the "
                "top-3 and top-5 labels on the raw zero-shot logits.",
    datasets=("coco2017",), attacks=("pgd-bce", "cw-ml"), eps=(1.0, 2.0, 4.0), steps=100, step_size=1.0,
    restarts=1, classnames="official", templates="paper", interpolation="bilinear", uncertainty_alpha="official",
    attack_options={"cw-ml": {"kappa": 50.0}},
    sources={
        "datasets": f"{_UCAT} replace/datasets/coco_multilabel_2017.py (val2017, instances_val2017.json)",
        "attacks": f"{_UCAT} main-multilabel.py:87 (pgd | CW), 674-684; attacks_multilabel.py:17-58 (BCE PGD), "
                   "60-113 (multi-label CW, kappa 50)",
        "eps": f"{_UCAT} main-multilabel.py:53, 239 (test_eps / 255); the tables' 1, 2 and 4/255",
        "steps": f"{_UCAT} main-multilabel.py:54 (test_numsteps 100)",
        "step_size": f"{_UCAT} main-multilabel.py:55, 241 (1/255)",
        "restarts": f"{_UCAT} attacks_multilabel.py:17-58 (one run, uniform random start)",
        "n_samples": f"{_UCAT} replace/datasets/coco_multilabel_2017.py (every val2017 image)",
        "attack_options": f"{_UCAT} attacks_multilabel.py:101 (relu(correct - wrong + 50))",
        "classnames": f"{_UCAT} coco_multilabel_2017.py (category names by id); utils.py:19-22 (refine_classname)",
        "templates": f"{_UCAT} main-multilabel.py:328 ('This is a photo of a {{}}')",
        "interpolation": f"{_UCAT} utils.py:139-147 (torchvision's default, bilinear)",
        "uncertainty_alpha": "not part of the multi-label evaluation",
        "metrics": f"{_UCAT} main-multilabel.py:113-206 (compute_multilabel_metrics), 620-694 (top_k 3 and 5)",
    },
    differences=(
        "aggregation: the official script averages per-batch metrics weighted by batch size; ucat computes them "
        "over the whole set (ucat.multilabel.batch_mean reproduces the official aggregation)",
        "AutoAttack: the official multi-label script runs the single-label AutoAttack on multi-hot targets "
        "(attacks_multilabel.py attack_auto); ucat offers no multi-label AutoAttack",
        "unlabelled images: kept as the official loader keeps them (all-zero targets)",
    )))


__all__ = ["DEFAULT_KEYS", "PROTOCOLS", "Protocol", "get_protocol", "list_protocols", "protocol_defaults"]
