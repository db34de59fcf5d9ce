"""Dataset readers: every dataset returns ``{"image": uint8 (3,S,S), "label": int, "source_crop": (4,)}``."""

from augself.data.errors import CorruptImageError, DatasetError
from augself.data.folder import FileListDataset, ImageFolderDataset, LabelledSubset, subset_by_seed
from augself.data.imageio import load_rgb, to_source
from augself.data.registry import DATASETS, build_dataset, dataset_info
from augself.data.synthetic import SHAPES, TASKS, SyntheticShapes, make_split

__all__ = [
    "DATASETS",
    "SHAPES",
    "TASKS",
    "CorruptImageError",
    "DatasetError",
    "FileListDataset",
    "ImageFolderDataset",
    "LabelledSubset",
    "SyntheticShapes",
    "build_dataset",
    "dataset_info",
    "load_rgb",
    "make_split",
    "subset_by_seed",
    "to_source",
]
