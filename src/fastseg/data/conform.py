"""Scans as users bring them: one canonical grid in (RAS+, a chosen voxel size), and back.

A user's whole-brain scan comes in any axis order (LPS, PIR, ...), voxel size
(0.8 mm, 1 x 1 x 1.2 mm, ...) and often with an oblique affine. A patch network sees
voxels, not millimetres, so it must be given the scan the way round and at the scale
it was trained on. :func:`conform` does that in two steps:

1. **Reorient** to RAS+ voxel order (array axis 0 runs left to right, 1 posterior to
   anterior, 2 inferior to superior), the closest axes chosen from the affine by
   nibabel's orientation tools. This is a permutation and flips of the array: no
   value changes and the affine is updated so that every voxel keeps its world
   position.
2. **Resample**, only where a voxel size differs from the wanted `spacing` by more
   than :data:`SPACING_TOLERANCE` (relative): trilinear, onto a grid of that spacing
   covering the same field of view (the same box of tissue, centred the same), with a
   Gaussian anti-aliasing filter along axes shrunk 1.4 times or more.

:meth:`Conformed.to_native` brings a map made on the conformed grid back onto the
scan's own grid (its shape and voxel order): the exact inverse permutation where no
resampling happened, a trilinear interpolation at the scan's voxel centres otherwise.

Obliquity
---------
An oblique scan (voxel axes rotated against the world axes) keeps its rotation by
default: the array axes are the scan's own, reordered to the closest of R, A, S, and
the conformed affine carries the rotation, so world positions stay exact and nothing
is interpolated to straighten the grid. Scanner operators usually tilt the slices to
follow the head (AC-PC or the hippocampus' long axis), so the voxel axes are often
closer to the anatomy's than the world axes are. ``deoblique=True`` instead resamples
onto a grid aligned with the world axes (covering the scan's whole field of view);
use it when the scan's head sits straight in world space but its slices do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastseg._optional import require
from fastseg.errors import InvalidTypeError, InvalidValueError

from .volume import Volume, spacing_of

__all__ = ["conform", "Conformed", "check_labels_grid", "as_ras", "SPACING_TOLERANCE",
           "VOXEL_SIZE_RANGE", "MAX_CONFORMED_VOXELS"]

#: A voxel size within this relative difference of the wanted spacing is kept as it is
#: (no resampling along that axis): scanners write 0.9999 mm for 1 mm.
SPACING_TOLERANCE = 1e-3
#: Voxel sizes (mm) accepted for a scan and for the conformed grid: a human MRI scan lies
#: well inside; outside is a wrong affine (metres, microns) more likely than a scan.
VOXEL_SIZE_RANGE = (0.1, 10.0)
#: The most voxels a conformed grid may hold (2**31: 8 GiB of float32); more means a
#: wrong affine or spacing rather than a scan.
MAX_CONFORMED_VOXELS = 2**31
#: Largest world distance (mm) between the corners of two grids that still count as the
#: same grid (:func:`check_labels_grid`).
GRID_TOLERANCE_MM = 1e-4
#: Anti-aliasing: a Gaussian of ``sigma = (r - 1) / 2`` source voxels (scikit-image's
#: rule) along each axis shrunk by ``r``; below this sigma its neighbour taps weigh under
#: 4e-6 and the pass is skipped (shrinking by less than 1.4 times).
_MIN_SIGMA = 0.2
# The direction cosines of a non-oblique (axis-aligned) affine differ from 0/1 by less.
_OBLIQUE_TOLERANCE = 1e-6
_IDENTITY_ORNT = np.array([[0, 1], [1, 1], [2, 1]], dtype=np.float64)


# -- checks ------------------------------------------------------------------------------
def _check_affine(affine, name) -> np.ndarray:
    try:
        a = None if isinstance(affine, str) else np.asarray(affine, dtype=np.float64)
    except (TypeError, ValueError):
        a = None
    if a is None or a.shape != (4, 4):
        got = f"shape {a.shape}" if a is not None else type(affine).__name__
        raise InvalidValueError(f"{name}: expected a 4x4 voxel-to-world matrix, got {got}")
    if not np.isfinite(a).all():
        raise InvalidValueError(f"{name}: holds NaN or infinity; a voxel-to-world matrix is "
                                "finite")
    sizes = np.sqrt((a[:3, :3] ** 2).sum(axis=0))
    det = abs(np.linalg.det(a[:3, :3]))
    # |det| against the product of the column lengths: 1 for orthogonal axes, 0 for
    # axes that lie in one plane (a grid that maps to a sheet, not a volume).
    if not (sizes > 0).all() or det <= 1e-6 * float(np.prod(sizes)):
        raise InvalidValueError(f"{name}: is singular (its voxel axes do not span 3-D space; "
                                f"voxel sizes {_fmt(sizes)} mm, determinant {det:.3g})")
    return a


def _check_voxel_size(sizes, name) -> None:
    lo, hi = VOXEL_SIZE_RANGE
    for axis, s in enumerate(sizes):
        if not lo <= s <= hi:
            raise InvalidValueError(f"{name}: voxel size {_fmt(sizes)} mm; axis {axis} "
                                    f"({s:.4g} mm) is outside [{lo}, {hi}] mm (is the affine "
                                    "in mm?)")


def _as_spacing(spacing) -> np.ndarray:
    try:
        values = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,)).copy()
    except (TypeError, ValueError):
        raise InvalidValueError(f"spacing: expected a voxel size in mm or 3 of them, got "
                                f"{spacing!r}") from None
    if not np.isfinite(values).all():
        raise InvalidValueError(f"spacing: must be finite, got {spacing!r}")
    _check_voxel_size(values, "spacing")
    return values


def _as_3d_array(array, name) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise InvalidTypeError(f"{name}: expected real voxel values, got dtype {arr.dtype}")
    shape = arr.shape
    while arr.ndim > 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        hint = ("; it holds several volumes (a time series?): pick one first"
                if arr.ndim > 3 else "")
        raise InvalidValueError(f"{name}: expected a 3-D scan, got shape {shape}{hint}")
    if arr.size == 0:
        raise InvalidValueError(f"{name}: is empty (shape {shape})")
    arr = np.asarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(arr.size - np.isfinite(arr).sum())
        raise InvalidValueError(f"{name}: {bad} voxels are NaN or infinite; a scan holds finite "
                                "values")
    return arr


def _fmt(values) -> str:
    return "x".join(f"{float(v):.4g}" for v in values)


def _inputs(image, affine, name):
    """(array, affine, header, name) of a Volume, a nibabel image or an array + affine."""
    if isinstance(image, Volume):
        if affine is not None:
            raise InvalidValueError("affine: give it only with an array; a Volume has its own")
        return image.array, image.affine, image.header, name or image.name
    if hasattr(image, "affine") and hasattr(image, "dataobj"):  # a nibabel image
        if affine is not None:
            raise InvalidValueError("affine: give it only with an array; a nibabel image has "
                                    "its own")
        if image.affine is None:
            raise InvalidValueError("image: the nibabel image has no affine")
        kind = np.dtype(image.get_data_dtype()).kind
        data = (image.get_fdata(dtype=np.float32) if kind in "biuf"
                else np.asarray(image.dataobj))  # refused, with its dtype, below
        return data, image.affine, image.header, name or "scan"
    if isinstance(image, (str, bytes)) or not hasattr(image, "__array__") and not isinstance(
            image, (list, tuple)):
        raise InvalidTypeError(f"image: expected a Volume, a nibabel image or a 3-D array, got "
                               f"{type(image).__name__}")
    if affine is None:
        raise InvalidValueError("affine: an array needs its 4x4 voxel-to-world matrix")
    return image, affine, None, name or "scan"


def check_labels_grid(labels_affine, labels_shape, scan_affine, scan_shape, name) -> None:
    """Refuse a label map whose voxel grid is not its scan's.

    Parameters
    ----------
    labels_affine, scan_affine : array_like
        ``(4, 4)`` voxel-to-world matrices.
    labels_shape, scan_shape : tuple of int
        The two arrays' shapes (trailing axes of length 1 ignored).
    name : str
        What the labels are (a file name), for the message.

    Raises
    ------
    ValueError
        Another shape, or a corner of the grid more than :data:`GRID_TOLERANCE_MM`
        (1e-4 mm) away from the scan's corner in world space.
    """
    def squeeze(shape):
        shape = tuple(int(s) for s in shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        return shape

    a = _check_affine(labels_affine, f"{name}: affine")
    b = _check_affine(scan_affine, "scan affine")
    if squeeze(labels_shape) != squeeze(scan_shape):
        raise InvalidValueError(f"{name}: shape {tuple(labels_shape)} differs from its scan's "
                                f"{tuple(scan_shape)}; labels must be on the scan's grid")
    # the grid's 8 corner voxels in world space: every voxel in between follows
    corners = np.array(list(np.ndindex(2, 2, 2)), dtype=np.float64) * (
        np.array(squeeze(scan_shape), dtype=np.float64) - 1)
    gap = np.linalg.norm((corners @ (a[:3, :3] - b[:3, :3]).T) + (a[:3, 3] - b[:3, 3]), axis=1)
    if gap.max() > GRID_TOLERANCE_MM:
        raise InvalidValueError(f"{name}: its affine places the grid up to {gap.max():.4g} mm "
                                f"away from its scan's (tolerance {GRID_TOLERANCE_MM} mm); "
                                "labels must be on the scan's grid")


# -- the record of the work --------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Conformed:
    """A scan on the canonical grid, with what is needed to bring maps back.

    Made by :func:`conform`; not meant to be built by hand.

    Attributes
    ----------
    array : numpy.ndarray
        ``(I, J, K)`` float32, C-contiguous: the scan in RAS+ voxel order at `spacing`.
    affine : numpy.ndarray
        ``(4, 4)`` float64 voxel-to-world matrix of `array`: voxel ``(i, j, k)`` lies at
        ``affine @ (i, j, k, 1)`` mm, the same world point the scan's value was taken at.
    spacing : tuple of float
        The voxel size of `array` in mm (the wanted spacing; an axis already within
        :data:`SPACING_TOLERANCE` of it keeps its own size).
    name : str
    native_shape : tuple of int
        The scan's own 3-D shape.
    native_affine : numpy.ndarray
        The scan's own voxel-to-world matrix.
    native_spacing : tuple of float
        The scan's own voxel size per array axis.
    header : nibabel header or None
        The scan's header (to write maps brought back with it).
    resampled : bool
        Whether values were interpolated (False: a pure permutation and flips).
    obliquity : float
        Degrees between the scan's voxel axes and the closest world axes (0: aligned).
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple
    name: str
    native_shape: tuple
    native_affine: np.ndarray
    native_spacing: tuple
    header: Any
    resampled: bool
    obliquity: float
    # native voxel order -> RAS+ (nibabel orientation), and the grid in between (the
    # native array reoriented, before resampling)
    _ornt: np.ndarray
    _reoriented_shape: tuple
    _reoriented_affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape

    @property
    def native_axcodes(self) -> tuple[str, str, str]:
        """The scan's own axis directions, e.g. ``("L", "P", "S")``."""
        nib = require("nibabel", "Conformed.native_axcodes")
        return tuple(nib.orientations.aff2axcodes(self.native_affine))

    def to_native(self, array, *, order=1, fill=0.0) -> np.ndarray:
        """A map on the conformed grid, brought onto the scan's own grid.

        Parameters
        ----------
        array : array_like
            ``self.shape``: a probability map (or any real map) made on
            :attr:`array`'s grid.
        order : {0, 1}
            1: trilinear interpolation at the scan's voxel centres (probabilities);
            0: nearest neighbour (label maps; see :meth:`labels_to_native`).
        fill : float
            The value of scan voxels whose centre lies outside the conformed grid
            (only possible with ``deoblique=True``: the conformed grid otherwise covers
            the scan's whole field of view).

        Returns
        -------
        numpy.ndarray
            ``native_shape``, in the scan's voxel order: float32 for ``order=1``, the
            input's dtype for ``order=0``. Where :func:`conform` did not resample it is
            the exact inverse permutation and flips (bitwise).

        Notes
        -----
        Make labels from the probabilities brought back (threshold *after* this call)
        rather than bringing back thresholded labels: the interpolated probability
        places the boundary between the conformed voxels, at the scan's resolution.
        """
        if order not in (0, 1):
            raise InvalidValueError(f"order: must be 0 (nearest) or 1 (trilinear), got "
                                    f"{order!r}")
        arr = np.asarray(array)
        if arr.dtype.kind not in "biuf":
            raise InvalidTypeError(f"array: expected a real map, got dtype {arr.dtype}")
        if arr.shape != self.shape:
            raise InvalidValueError(f"array: shape {arr.shape} is not the conformed grid's "
                                    f"{self.shape}")
        if order == 1:
            arr = np.asarray(arr, dtype=np.float32)
        if self.resampled:
            arr = self._resample_back(arr, order, fill)
        nib = require("nibabel", "Conformed.to_native")
        back = nib.orientations.ornt_transform(_IDENTITY_ORNT, self._ornt)
        return _own(nib.orientations.apply_orientation(arr, back), array)

    def labels_to_native(self, labels) -> np.ndarray:
        """A label map (integers or bool) on the conformed grid, brought back by nearest
        neighbour; same dtype. Prefer thresholding :meth:`to_native` of a probability."""
        arr = np.asarray(labels)
        if arr.dtype.kind not in "biu":
            raise InvalidTypeError(f"labels: expected an integer or bool label map, got dtype "
                                   f"{arr.dtype}")
        return self.to_native(arr, order=0)

    def _resample_back(self, arr, order, fill):
        """`arr` sampled at the centres of the reoriented native grid."""
        ndimage = require("scipy.ndimage", "Conformed.to_native")
        to_conformed = np.linalg.inv(self.affine) @ self._reoriented_affine
        matrix, offset = to_conformed[:3, :3], to_conformed[:3, 3]
        diagonal = _is_diagonal(matrix)
        out = ndimage.affine_transform(arr, np.diag(matrix) if diagonal else matrix,
                                       offset=offset, output_shape=self._reoriented_shape,
                                       order=order, mode="nearest", prefilter=False)
        outside = _outside(matrix, offset, self._reoriented_shape, self.shape, diagonal)
        if outside is not None:
            out[outside] = fill
        return out

    def __repr__(self) -> str:
        return (f"Conformed(name={self.name!r}, shape={self.shape}, spacing="
                f"{tuple(round(s, 4) for s in self.spacing)}, native_shape={self.native_shape}, "
                f"resampled={self.resampled})")


def _own(arr, source) -> np.ndarray:
    """`arr` C-contiguous and not sharing memory with the caller's `source` (a result
    the caller may change in place without changing its input)."""
    out = np.ascontiguousarray(arr)
    if isinstance(source, np.ndarray) and np.may_share_memory(out, source):
        out = out.copy()
    return out


def _is_diagonal(matrix) -> bool:
    return bool(np.all(np.abs(matrix - np.diag(np.diag(matrix))) <= 1e-12))


def _outside(matrix, offset, out_shape, in_shape, diagonal):
    """Where output voxels sample more than half a voxel beyond the input grid, or None."""
    lo, hi = -0.5, np.asarray(in_shape, dtype=np.float64) - 0.5
    if diagonal:
        axes = []
        for a, n in enumerate(out_shape):
            x = matrix[a, a] * np.arange(n) + offset[a]
            axes.append((x < lo - 1e-9) | (x > hi[a] + 1e-9))
        if not any(ax.any() for ax in axes):
            return None
        return axes[0][:, None, None] | axes[1][None, :, None] | axes[2][None, None, :]
    mask = np.zeros(out_shape, dtype=bool)
    j, k = np.meshgrid(np.arange(out_shape[1]), np.arange(out_shape[2]), indexing="ij")
    for i in range(out_shape[0]):  # a slice at a time: three coordinate planes, not volumes
        x = matrix[:, 0:1, None] * i + matrix[:, 1:2, None] * j + matrix[:, 2:3, None] * k
        x = x + offset[:, None, None]
        mask[i] = ((x < lo - 1e-9) | (x > hi[:, None, None] + 1e-9)).any(axis=0)
    return mask if mask.any() else None


# -- conform -----------------------------------------------------------------------------
def conform(image, affine=None, spacing=(1.0, 1.0, 1.0), *, name=None,
            deoblique=False) -> Conformed:
    """A scan in RAS+ voxel order at the wanted voxel size, world positions kept.

    Parameters
    ----------
    image : Volume, nibabel image or array_like
        The scan: a :class:`~fastseg.data.Volume` (as
        :func:`~fastseg.data.load_nifti` returns), a nibabel image, or a 3-D array
        (a 4-D one with a trailing axis of length 1 is accepted) with `affine`.
    affine : array_like, optional
        ``(4, 4)`` voxel-to-world matrix (mm), with an array only.
    spacing : float or sequence of 3 floats
        The wanted voxel size in mm, along R, A, S (default 1 mm).
    name : str, optional
        For messages and the result (default: the Volume's name, else ``"scan"``).
    deoblique : bool
        False (default): an oblique scan keeps its rotation in the affine (module
        notes); True: resample onto world-aligned axes.

    Returns
    -------
    Conformed
        ``.array`` (float32, C-contiguous), ``.affine``, ``.spacing``, and
        :meth:`~Conformed.to_native` to bring maps back.

    Raises
    ------
    InvalidTypeError
        `image` of another type or with non-numeric voxels.
    InvalidValueError
        An affine that is not a finite, non-singular 4x4 matrix; a voxel size (the
        scan's or `spacing`) outside :data:`VOXEL_SIZE_RANGE`; a scan that is not 3-D
        (several volumes), is empty or holds NaN/infinity; a conformed grid over
        :data:`MAX_CONFORMED_VOXELS` voxels. Each message names the argument.

    Notes
    -----
    Reorientation never interpolates. Resampling is trilinear, the grid centred on the
    scan's field of view with ``round(n * size / spacing)`` voxels per axis; samples
    that fall within half a voxel beyond the scan's edge take the edge voxel's value.
    Axes shrunk 1.4 times or more (e.g. 0.5 mm to 1 mm) are first smoothed by a
    Gaussian of ``sigma = (r - 1) / 2`` voxels against aliasing.
    """
    nib = require("nibabel", "conform")
    array, affine, header, name = _inputs(image, affine, name)
    what = name if name != "scan" else "image"
    native = _as_3d_array(array, what)
    native_affine = _check_affine(affine, "affine" if header is None else f"{what}: affine")
    native_sizes = np.sqrt((native_affine[:3, :3] ** 2).sum(axis=0))
    _check_voxel_size(native_sizes, f"{what}: affine")
    target = _as_spacing(spacing)

    ornt = nib.orientations.io_orientation(native_affine)
    if np.isnan(ornt).any():  # cannot happen for a non-singular affine; be explicit
        raise InvalidValueError(f"{what}: affine has no well-defined axis directions")
    reoriented = _own(nib.orientations.apply_orientation(native, ornt), array)
    r_affine = native_affine @ nib.orientations.inv_ornt_aff(ornt, native.shape)
    directions = r_affine[:3, :3] / np.sqrt((r_affine[:3, :3] ** 2).sum(axis=0))
    obliquity = float(np.degrees(np.arccos(np.clip(np.abs(np.diag(directions)).min(), 0, 1))))
    oblique = bool(np.abs(directions - np.diag(np.diag(directions))).max() > _OBLIQUE_TOLERANCE)

    if deoblique and oblique:
        array_c, affine_c, resampled = _resample_world(reoriented, r_affine, target, what)
    else:
        array_c, affine_c, resampled = _resample_axes(reoriented, r_affine, target, what)
    spacing_c = spacing_of(affine_c)
    return Conformed(np.ascontiguousarray(array_c, dtype=np.float32), affine_c, spacing_c,
                     str(name), tuple(int(s) for s in native.shape), native_affine,
                     tuple(float(s) for s in native_sizes), header, resampled, obliquity,
                     ornt, tuple(int(s) for s in reoriented.shape), r_affine)


def _check_grid_size(shape, what, spacing) -> None:
    total = int(np.prod([int(s) for s in shape], dtype=object))
    if total > MAX_CONFORMED_VOXELS:
        raise InvalidValueError(f"{what}: at {_fmt(spacing)} mm the conformed grid would be "
                                f"{'x'.join(str(int(s)) for s in shape)} = {total} voxels "
                                f"({total * 4 / 2**30:.1f} GiB of float32), over "
                                f"{MAX_CONFORMED_VOXELS}; check the affine and spacing")


def _antialias(ndimage, arr, shrink):
    """`arr` smoothed along the axes shrunk by ``shrink > 1`` (sigma (r - 1) / 2)."""
    sigma = [max(0.0, (r - 1.0) / 2.0) for r in shrink]
    sigma = [s if s >= _MIN_SIGMA else 0.0 for s in sigma]
    if not any(sigma):
        return arr
    return ndimage.gaussian_filter(arr, sigma, mode="nearest")


def _resample_axes(arr, affine, target, what):
    """Resample along the scan's own (reoriented) axes; returns (array, affine, resampled).

    Along each axis the new grid has ``m = round(n * size / spacing)`` voxels centred on
    the old field of view; axes within tolerance are left alone, so the map from new to
    old voxel indices is diagonal (a per-axis scaling and shift).
    """
    sizes = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    keep = np.abs(sizes - target) <= SPACING_TOLERANCE * target
    if keep.all():
        return arr, affine, False
    n = np.asarray(arr.shape, dtype=np.float64)
    step = np.where(keep, 1.0, target / sizes)  # old voxels per new voxel
    m = np.where(keep, n, np.maximum(np.floor(n * sizes / target + 0.5), 1.0))
    _check_grid_size(m, what, np.where(keep, sizes, target))
    offset = (n - 1) / 2 - step * (m - 1) / 2  # the centres of the two fields of view agree
    to_old = np.eye(4)
    to_old[:3, :3] = np.diag(step)
    to_old[:3, 3] = offset
    ndimage = require("scipy.ndimage", "conform")
    source = _antialias(ndimage, arr, step)
    out = ndimage.affine_transform(source, step, offset=offset,
                                   output_shape=tuple(int(v) for v in m), order=1,
                                   mode="nearest", prefilter=False)
    return out, affine @ to_old, True


def _resample_world(arr, affine, target, what):
    """Resample onto world-aligned axes (RAS+) covering the scan's field of view."""
    n = np.asarray(arr.shape, dtype=np.float64)
    # the field of view's 8 corners (voxel edges, half a voxel beyond the centres)
    corners = np.array(list(np.ndindex(2, 2, 2)), dtype=np.float64) * n - 0.5
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    lo, hi = world.min(axis=0), world.max(axis=0)
    m = np.maximum(np.ceil((hi - lo) / target - 1e-6), 1.0)
    _check_grid_size(m, what, target)
    new_affine = np.eye(4)
    new_affine[:3, :3] = np.diag(target)
    new_affine[:3, 3] = (lo + hi) / 2 - target * (m - 1) / 2
    to_old = np.linalg.inv(affine) @ new_affine
    ndimage = require("scipy.ndimage", "conform")
    # shrink per old axis: how many old voxels one new voxel spans along it
    shrink = np.abs(to_old[:3, :3]).max(axis=1)
    source = _antialias(ndimage, arr, shrink)
    shape = tuple(int(v) for v in m)
    out = ndimage.affine_transform(source, to_old[:3, :3], offset=to_old[:3, 3],
                                   output_shape=shape, order=1, mode="nearest",
                                   prefilter=False)
    # Outside the scan's field of view there is no tissue: the scan's lowest value
    # (its background), not 0, which may be brighter than a background below 0.
    outside = _outside(to_old[:3, :3], to_old[:3, 3], shape, arr.shape, False)
    if outside is not None:
        out[outside] = float(arr.min())
    return out, new_affine, True


def as_ras(array, affine):
    """`array` in RAS+ voxel order, by permutation and flips only (no interpolation), with
    the affine of the result: for pictures that show a scan as radiologists expect.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The reoriented array (a view where possible) and its (4, 4) affine.
    """
    nib = require("nibabel", "as_ras")
    a = _check_affine(affine, "affine")
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise InvalidValueError(f"array: expected a 3-D scan, got shape {arr.shape}")
    ornt = nib.orientations.io_orientation(a)
    out = nib.orientations.apply_orientation(arr, ornt)
    return out, a @ nib.orientations.inv_ornt_aff(ornt, arr.shape)
