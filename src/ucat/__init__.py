"""ucat: uncertainty-calibrated adversarial fine-tuning and robust, calibrated evaluation of CLIP.

Public API (see README): ``ucat.models.load_clip``, ``ucat.models.ZeroShotClassifier``,
``ucat.uncertainty``, ``ucat.metrics``, ``ucat.attacks``, ``ucat.data``, ``ucat.methods``,
``ucat.train``, ``ucat.eval``.
"""
__version__ = "0.1.0"
