"""Datasets: the registry, the paper's benchmarks, your own folders/CSVs, the procedural world."""
from .registry import COLLECTIONS, DATASETS, DatasetInfo, register_collection, register_dataset

__all__ = ["COLLECTIONS", "DATASETS", "DatasetInfo", "register_collection", "register_dataset"]
