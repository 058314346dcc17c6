"""Data: the built-in synthetic fundus set, DRIVE and image folders, patches, sampling.

Everything here is NumPy/Pillow only (no compiled kernels), so ``fastseg.data`` is
importable anywhere the package is.
"""

from .drive import load_drive
from .folder import IMAGE_EXTENSIONS, MASK_TAGS, load_folder, read_image, read_mask
from .patches import pad_for_patches, patches_at, patches_from_padded
from .preprocess import preprocess
from .record import Sample
from .sampler import PatchSampler
from .synthetic import synthetic_fundus

__all__ = [
    "IMAGE_EXTENSIONS",
    "MASK_TAGS",
    "PatchSampler",
    "Sample",
    "load_drive",
    "load_folder",
    "pad_for_patches",
    "patches_at",
    "patches_from_padded",
    "preprocess",
    "read_image",
    "read_mask",
    "synthetic_fundus",
]
