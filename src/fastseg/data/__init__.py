"""Data: the built-in synthetic fundus set, DRIVE and image folders, patches, sampling;
and the MRI half: NIfTI volumes, the built-in hippocampus set, the Decathlon layout,
the four network kinds' patch cutters and a voxel sampler; scans as users bring them
(:func:`conform` to RAS+ at a voxel size, and back), robust intensity normalisation and
per-patch augmentation.

Everything here is NumPy/Pillow only (no compiled kernels), so ``fastseg.data`` is
importable anywhere the package is; the MRI functions import nibabel and scipy when
called (``pip install "fastseg[mri]"``).
"""

from .augment import Augment
from .conform import Conformed, as_ras, check_labels_grid, conform
from .drive import load_drive
from .folder import IMAGE_EXTENSIONS, MASK_TAGS, load_folder, read_image, read_mask
from .hippocampus import hippocampus_mri
from .intensity import (
    brain_foreground,
    normalization_zero,
    normalize_brain,
    normalize_scan,
    normalize_volume,
)
from .msd import load_msd, load_nifti_folder
from .nifti import load_nifti, save_nifti
from .patches import pad_for_patches, patches_at, patches_from_padded
from .preprocess import preprocess
from .record import Sample
from .sampler import PatchSampler
from .synthetic import synthetic_fundus
from .volume import Volume, VolumeSample
from .volume_patches import CUTTER_KINDS, PatchCutter, make_cutter
from .volume_sampler import BRAIN_NEGATIVES, VolumePatchSampler

__all__ = [
    "Augment",
    "BRAIN_NEGATIVES",
    "CUTTER_KINDS",
    "Conformed",
    "IMAGE_EXTENSIONS",
    "MASK_TAGS",
    "PatchCutter",
    "PatchSampler",
    "Sample",
    "Volume",
    "VolumePatchSampler",
    "VolumeSample",
    "brain_foreground",
    "check_labels_grid",
    "conform",
    "as_ras",
    "hippocampus_mri",
    "load_drive",
    "load_folder",
    "load_msd",
    "load_nifti",
    "load_nifti_folder",
    "make_cutter",
    "normalization_zero",
    "normalize_brain",
    "normalize_scan",
    "normalize_volume",
    "pad_for_patches",
    "patches_at",
    "patches_from_padded",
    "preprocess",
    "read_image",
    "read_mask",
    "save_nifti",
    "synthetic_fundus",
]
