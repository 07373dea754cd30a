"""Datasets: the registry, the paper's benchmarks, your own folders/CSVs, the procedural world.

    from ucat.data import build_dataset, expand_datasets, subsample, make_loader

    ds = build_dataset("cifar10", root="~/data")            # or UCAT_DATA=~/data
    ds = build_dataset("/photos/my_classes")                 # ImageFolder layout
    ds = build_dataset("labels.csv", classnames_file="names.txt", template="a photo of a {}.")
    for name in expand_datasets(["zs16"]): ...               # the paper's 16, in its order
    loader = make_loader(subsample(ds, 500, seed=0), batch_size=64)
    for images, labels, n_skipped in loader: ...
"""
from .registry import COLLECTIONS, DATASETS, DatasetInfo, register_collection, register_dataset
from .base import FileListDataset, LabeledImageDataset, UnreadableImageError, WrappedDataset
from .meta import (CLASSNAME_KINDS, benchmark_meta, benchmark_prompts, classnames, ensemble_templates, official_file,
                   readable, text_fingerprint)
from . import catalog as _catalog  # noqa: F401  (registers every built-in dataset: the benchmarks and the world)
from .benchmarks import ZS16
from .build import ENV_ROOT, build_dataset, check_dataset, describe, expand_datasets, resolve_root
from .folder import csv_dataset, image_folder, read_classnames_file
from .loader import (SubsetDataset, collate_indexed, collate_skip_unreadable, dataset_targets, make_loader,
                     num_workers_setting, resolve_num_workers, subsample)

__all__ = [
    "COLLECTIONS", "DATASETS", "DatasetInfo", "register_collection", "register_dataset",
    "FileListDataset", "LabeledImageDataset", "UnreadableImageError", "WrappedDataset",
    "CLASSNAME_KINDS", "benchmark_meta", "benchmark_prompts", "classnames", "ensemble_templates", "official_file",
    "readable", "text_fingerprint", "ZS16",
    "ENV_ROOT", "build_dataset", "check_dataset", "describe", "expand_datasets", "resolve_root",
    "csv_dataset", "image_folder", "read_classnames_file",
    "SubsetDataset", "collate_indexed", "collate_skip_unreadable", "dataset_targets", "make_loader",
    "num_workers_setting", "resolve_num_workers", "subsample",
]
