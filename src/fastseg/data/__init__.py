"""Data: the built-in synthetic fundus set, DRIVE and image folders, patches, sampling;
and the MRI half: NIfTI volumes, the built-in hippocampus set, the Decathlon layout,
the four network kinds' patch cutters and a voxel sampler.

Everything here is NumPy/Pillow only (no compiled kernels), so ``fastseg.data`` is
importable anywhere the package is; the MRI functions import nibabel and scipy when
called (``pip install "fastseg[mri]"``).
"""

from .drive import load_drive
from .folder import IMAGE_EXTENSIONS, MASK_TAGS, load_folder, read_image, read_mask
from .hippocampus import hippocampus_mri
from .msd import load_msd, load_nifti_folder
from .nifti import load_nifti, save_nifti
from .patches import pad_for_patches, patches_at, patches_from_padded
from .preprocess import preprocess
from .record import Sample
from .sampler import PatchSampler
from .synthetic import synthetic_fundus
from .volume import Volume, VolumeSample
from .volume_patches import CUTTER_KINDS, PatchCutter, make_cutter
from .volume_sampler import VolumePatchSampler, normalize_volume

__all__ = [
    "CUTTER_KINDS",
    "IMAGE_EXTENSIONS",
    "MASK_TAGS",
    "PatchCutter",
    "PatchSampler",
    "Sample",
    "Volume",
    "VolumePatchSampler",
    "VolumeSample",
    "hippocampus_mri",
    "load_drive",
    "load_folder",
    "load_msd",
    "load_nifti",
    "load_nifti_folder",
    "make_cutter",
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
