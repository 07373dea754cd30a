"""CLIP loading and the zero-shot classifier view of it."""
from .clip import ClipBundle, ImageEncoder, image_transform, list_architectures, load_clip, register_model_configs
from .zero_shot import ZeroShotClassifier, build_text_head, cached_text_head, make_prompts

__all__ = ["ClipBundle", "ImageEncoder", "ZeroShotClassifier", "build_text_head", "cached_text_head",
           "image_transform", "list_architectures", "load_clip", "make_prompts", "register_model_configs"]
