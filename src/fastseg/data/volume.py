"""The records of the MRI half: a NIfTI volume, and a volume with its label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastseg.errors import InvalidValueError

__all__ = ["Volume", "VolumeSample", "spacing_of", "voxel_to_world"]


def spacing_of(affine) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis: the lengths of the affine's first 3 columns.

    Read from the affine rather than the header's ``pixdim`` so that spacing and
    resampling agree even where a file's two disagree.
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.isfinite(a).all():
        raise InvalidValueError(f"affine must be a finite 4x4 matrix, got shape {a.shape}")
    spacing = np.sqrt((a[:3, :3] ** 2).sum(axis=0))
    if not (spacing > 0).all():
        raise InvalidValueError(f"affine is singular: voxel spacing {tuple(spacing.tolist())}")
    return tuple(float(s) for s in spacing)


def _as_affine(value) -> np.ndarray:
    a = np.array(value, dtype=np.float64)
    spacing_of(a)  # shape, finiteness and singularity, with the message
    return a


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D scan as read from a NIfTI file.

    Parameters
    ----------
    array : numpy.ndarray
        ``(I, J, K)`` float32 voxel values (the file's scaling applied), in the
        file's voxel order (not reoriented).
    affine : numpy.ndarray
        ``(4, 4)`` float64: voxel index ``(i, j, k, 1)`` to world coordinates in mm
        (RAS+, the NIfTI convention).
    spacing : tuple of float
        Voxel size in mm along each array axis (from the affine).
    header : nibabel header or None
        The file's header, kept so that outputs written with
        :func:`~fastseg.data.save_nifti` carry it.
    name : str
        The file name without ``.nii``/``.nii.gz``.
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple
    header: Any
    name: str

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3 or arr.dtype != np.float32:
            raise InvalidValueError(f"array must be a 3-D float32 array, got shape {arr.shape} "
                                    f"dtype {arr.dtype}")
        affine = _as_affine(self.affine)
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "name", str(self.name))

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape

    def world(self, index) -> np.ndarray:
        """World coordinates (mm) of voxel indices: ``(3,)`` or ``(N, 3)`` in, same out."""
        return voxel_to_world(self.affine, index)

    def __repr__(self) -> str:
        return (f"Volume(name={self.name!r}, shape={self.shape}, "
                f"spacing={tuple(round(s, 4) for s in self.spacing)})")


def voxel_to_world(affine, index) -> np.ndarray:
    """Apply a 4x4 affine to voxel indices ``(3,)`` or ``(N, 3)``."""
    idx = np.asarray(index, dtype=np.float64)
    if idx.shape[-1:] != (3,) or idx.ndim > 2:
        raise InvalidValueError(f"index must be (3,) or (N, 3), got shape {idx.shape}")
    a = np.asarray(affine, dtype=np.float64)
    return idx @ a[:3, :3].T + a[:3, 3]


@dataclass(frozen=True, eq=False)
class VolumeSample:
    """A scan with its binary label, the unit of the MRI data sets.

    Parameters
    ----------
    image : numpy.ndarray
        ``(D, H, W)`` float32 voxel values.
    mask : numpy.ndarray
        ``(D, H, W)`` bool: the structure (the hippocampus).
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-world (mm) matrix of this array (for a crop: of the crop).
    spacing : tuple of float
        Voxel size in mm per array axis.
    name : str
    header : nibabel header or None, optional
        The scan's header where it came from a file (to write results like it).
    labels : numpy.ndarray or None, optional
        ``(D, H, W)`` uint8 sides of the structure where known: 0 background, 1 left,
        2 right (for the hippocampus); non-zero exactly where `mask` is. None (the
        default) for samples without sides.

    Notes
    -----
    Frozen and compared by identity, as :class:`~fastseg.data.Sample`; the arrays stay
    writeable, so treat them as read-only by convention.
    """

    image: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    spacing: tuple
    name: str
    header: Any = None
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 3 or image.dtype != np.float32:
            raise InvalidValueError(f"image must be a 3-D float32 array, got shape {image.shape} "
                                    f"dtype {image.dtype}")
        mask = np.asarray(self.mask)
        if mask.dtype != np.bool_ or mask.shape != image.shape:
            raise InvalidValueError(f"mask must be a bool array of shape {image.shape}, got shape "
                                    f"{mask.shape} dtype {mask.dtype}")
        affine = _as_affine(self.affine)
        spacing = tuple(float(s) for s in self.spacing)
        if len(spacing) != 3 or not all(s > 0 for s in spacing):
            raise InvalidValueError(f"spacing must be 3 positive numbers, got {self.spacing!r}")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "name", str(self.name))
        if self.labels is not None:
            object.__setattr__(self, "labels", _as_sides(self.labels, mask))

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.image.shape

    def __repr__(self) -> str:
        return (f"VolumeSample(name={self.name!r}, shape={self.shape}, "
                f"spacing={tuple(round(s, 4) for s in self.spacing)}, "
                f"voxels={int(self.mask.sum())}"
                f"{'' if self.labels is None else ', labels=(left, right)'})")


def _as_sides(labels, mask) -> np.ndarray:
    """`labels` as uint8 0/1/2 of the mask's shape, non-zero exactly where `mask` is."""
    arr = np.asarray(labels)
    if arr.dtype.kind not in "biu" or arr.shape != mask.shape:
        raise InvalidValueError(f"labels must be an integer array of shape {mask.shape} (0 "
                                f"background, 1 left, 2 right), got shape {arr.shape} dtype "
                                f"{arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 2):
        raise InvalidValueError(f"labels must hold 0 (background), 1 (left) and 2 (right), got "
                                f"values in [{arr.min()}, {arr.max()}]")
    if not np.array_equal(arr > 0, mask):
        raise InvalidValueError("labels must be non-zero exactly where mask is True")
    return arr.astype(np.uint8, copy=False)
