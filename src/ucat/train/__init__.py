"""Adversarial fine-tuning of CLIP's image encoder: ``train(TrainConfig(...)) -> TrainResult``.

One trainer for every method in :mod:`ucat.methods`; CPU, one GPU, or ``torchrun`` with
DistributedDataParallel; exact resume; safetensors + JSON checkpoints (no pickle) and an open_clip
export. Layout: ``config`` (the settings), ``data`` (training set, held-out split, resumable order),
``optim`` (parameters, optimizer, schedule), ``state`` / ``checkpoints`` (the state on disk),
``resume`` (what may change on resume), ``guards`` (non-finite detection), ``logs``, ``validation``,
``loop`` (step and epoch loops), ``trainer`` (``train()``: set-up, resume, loop, export).
"""
from .config import TrainConfig
from .guards import TrainingDiverged
from .loop import NoUsableData, TrainState
from .optim import lr_multiplier, trainable_parameters
from .trainer import TrainResult, train

__all__ = ["NoUsableData", "TrainConfig", "TrainResult", "TrainState", "TrainingDiverged", "lr_multiplier",
           "train", "trainable_parameters"]
