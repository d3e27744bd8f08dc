"""Real data: decoding MNIST, Fashion-MNIST, CIFAR-10 (python or JPEG), digits and image
folders to uint8 arrays, the study's splits, and conversion to model tensors in [-1, 1]."""

from synthmix.data.preprocess import to_model_tensor, to_uint8_images
from synthmix.data.raw import RawDataset, RawSplit, SourceInfo
from synthmix.data.registry import (
    check_dataset_name,
    dataset_names,
    default_data_dir,
    load_dataset,
)
from synthmix.data.splits import StudySplits, make_study_splits

__all__ = [
    "RawDataset",
    "RawSplit",
    "SourceInfo",
    "StudySplits",
    "check_dataset_name",
    "dataset_names",
    "default_data_dir",
    "load_dataset",
    "make_study_splits",
    "to_model_tensor",
    "to_uint8_images",
]
