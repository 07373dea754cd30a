"""Adversarial fine-tuning of CLIP's image encoder: ``train(TrainConfig(...)) -> TrainResult``.

One trainer for every method in :mod:`ucat.methods`; CPU, one GPU, or ``torchrun`` with
DistributedDataParallel; exact resume; safetensors checkpoints and an open_clip export.
"""
from .config import TrainConfig
from .trainer import TrainResult, TrainingDiverged, lr_multiplier, train, trainable_parameters

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "lr_multiplier", "train", "trainable_parameters"]
