"""Training-time augmentation for scans from other scanners, applied per patch.

A network trained on one scanner's scans meets others: another intensity
non-uniformity (bias field), another contrast curve, more noise, a head a few degrees
rotated or a brain a few percent larger, a sharper or a blurrier image. :class:`Augment`
imitates each, per patch, as the patches are cut, so a training batch costs a little
more than a plain one and nothing is stored but one detail volume per scan:

- **rotation and scaling** (geometric): the patch is sampled (trilinear) on its voxel
  grid rotated and scaled about the patch's centre voxel; beyond the volume's border
  the volume is mirrored exactly as the cutters' padding does (NumPy ``"reflect"``),
  however far a rotated corner reaches. The 2-D kinds (``"2d"``, ``"stacked2d"``) rotate and scale
  in their plane (a stacked patch's planes stay one voxel apart); the tri-planar and
  3-D kinds rotate in 3-D (the three planes of one rotated frame).
- **sharpness**: ``v + a * (v - G v)``, ``G`` a Gaussian of :data:`SHARPNESS_SIGMA`
  voxels over the whole scan (mirrored at its border), ``a`` drawn per patch in
  ``[-sharpness, sharpness]``: ``a < 0`` blurs (``a = -1`` is ``G v``), ``a > 0``
  sharpens (unsharp masking). It is linear in the scan, so the detail ``v - G v`` is
  made once per scan (:meth:`Augment.detail`) and each patch is the scan's patch plus
  ``a`` times the detail's, cut on the same (rotated) grid: a real 3-D filter of the
  scan for every kind, with no patch-border artefacts.
- **bias field**: values are multiplied by a smooth field about the value a raw 0 takes
  after normalisation (``zero``), which is what a multiplicative field on the raw scan
  is in normalised units. The field is ``exp`` of a trilinear interpolation of values
  drawn at the corners of a cell of ``bias_length`` voxels laid at a random place over
  the patch: how a coarse grid of control points, upsampled, looks at a patch's scale.
- **gamma**: ``lo + (hi - lo) * ((v - lo) / (hi - lo)) ** g`` with the patch's own
  minimum and maximum: monotone (the order of tissues kept), the patch's range kept.
- **noise**: Gaussian, of a standard deviation drawn per patch in ``[0, noise]``.

Every random number comes from the :class:`numpy.random.Generator` passed in, drawn in
one fixed order whatever is switched on, so a seed fixes the batch and switching one
transform off leaves the others' draws as they were. A transform whose amplitude is 0
is skipped: all of them 0 gives the cutter's patches bit for bit. Rotations are in
voxel space; on a conformed scan (:func:`~fastseg.data.conform`) voxels are cubes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from fastseg import _validate
from fastseg.errors import InvalidTypeError, InvalidValueError

from .patches import check_coords
from .volume_patches import PatchCutter, Planar2D, Stacked2D

__all__ = ["Augment", "AUGMENT_LIMITS", "SHARPNESS_SIGMA"]

#: option -> (smallest, largest) value accepted.
AUGMENT_LIMITS = {
    "rotate": (0.0, 45.0),
    "scale": (0.0, 0.5),
    "bias": (0.0, 2.0),
    "bias_length": (1.0, 1e4),
    "gamma": (0.0, 2.0),
    "noise": (0.0, 10.0),
    "sharpness": (0.0, 1.0),
}

#: The sharpness transform's Gaussian, in voxels (of the conformed scan). With ``a`` in
#: [-1, 1] it spans 0.66 to 1.43 times a scan's interior edge strength (the 90th
#: percentile of the gradient's magnitude over the brain eroded by 6 voxels) on the
#: built-in MNI152 template; the ICBM 2009c template's is 1.39 times MNI152's. Scanners,
#: sequences and reconstruction filters differ in resolution by as much.
SHARPNESS_SIGMA = 1.5


@dataclass(frozen=True)
class Augment:
    """Which scanner differences to imitate, and how strongly (0 switches one off).

    Parameters
    ----------
    rotate : float
        Largest rotation in degrees, drawn uniformly in ``[-rotate, rotate]`` per axis
        (per patch; the 2-D kinds: one in-plane angle). Default 5: head positions in a
        scanner differ by a few degrees, and a network should not depend on them.
    scale : float
        Largest relative scaling, drawn in ``[1 - scale, 1 + scale]`` (isotropic).
        Default 0.05: brains differ in size by that much after conforming to 1 mm.
    bias : float
        Bias field strength: the field lies in ``[1 / (1 + bias), 1 + bias]``.
        Default 0.2: uncorrected intensity non-uniformity at 1.5-3 T is 10-30 %.
    bias_length : float
        The field's length scale in voxels (its control-point spacing). Default 64:
        coils vary over several centimetres, more than a patch.
    gamma : float
        Largest log-contrast change: the exponent ``g`` lies in
        ``[1 / (1 + gamma), 1 + gamma]`` (log-uniform). Default 0.2: T1 sequences
        (MPRAGE, SPGR) and scanners differ in contrast by about that.
    noise : float
        Largest noise standard deviation, in normalised units (drawn per patch in
        ``[0, noise]``). Default 0.05: a few percent of the brain's spread.
    sharpness : float
        Largest unsharp-mask amount ``|a|`` (see the module's notes). Default 1: without
        it, networks trained on one template gave 15 % larger hippocampi on the sharper
        other one and 7 % smaller once it was blurred by 0.6 voxels: they had learnt
        the boundary from the training scan's resolution.
    """

    rotate: float = 5.0
    scale: float = 0.05
    bias: float = 0.2
    bias_length: float = 64.0
    gamma: float = 0.2
    noise: float = 0.05
    sharpness: float = 1.0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            lo, hi = AUGMENT_LIMITS[field.name]
            value = _validate.as_real(f"Augment.{field.name}", getattr(self, field.name), lo, hi)
            object.__setattr__(self, field.name, value)

    # -- records ---------------------------------------------------------------------
    @classmethod
    def off(cls) -> Augment:
        """Every transform switched off (the cutters' patches, bit for bit)."""
        return cls(**{f.name: 0.0 for f in dataclasses.fields(cls) if f.name != "bias_length"})

    @property
    def enabled(self) -> bool:
        """Whether any transform is switched on."""
        return self.geometric or any((self.bias, self.gamma, self.noise, self.sharpness))

    @property
    def geometric(self) -> bool:
        """Whether patches are cut rotated or scaled."""
        return bool(self.rotate or self.scale)

    def config(self) -> dict:
        """The options as a JSON-able dict; :meth:`from_config` rebuilds the same."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_config(cls, config) -> Augment:
        """An Augment from :meth:`config`'s dict (missing options take their defaults).

        Raises
        ------
        InvalidTypeError
            `config` is not a dict, or a value is not a number.
        InvalidValueError
            An unknown option (named), or a value out of :data:`AUGMENT_LIMITS`.
        """
        if not isinstance(config, dict):
            raise InvalidTypeError(f"config: expected a dict of Augment options, got "
                                   f"{type(config).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InvalidValueError(f"config: unknown Augment option {unknown[0]!r} (known: "
                                    f"{sorted(known)})")
        return cls(**config)

    # -- applying it -------------------------------------------------------------------
    @staticmethod
    def detail(volume) -> np.ndarray:
        """``volume - G volume`` (float32), the sharpness transform's detail of a
        (normalised) scan: G a Gaussian of :data:`SHARPNESS_SIGMA` voxels, the scan
        mirrored at its border as the cutters pad it. Pad it as the scan is
        (``cutter.pad``) and pass it to :meth:`cut`."""
        from scipy import ndimage

        v = np.asarray(volume, dtype=np.float32)
        if v.ndim != 3:
            raise InvalidValueError(f"volume: expected a (D, H, W) scan, got shape {v.shape}")
        return v - ndimage.gaussian_filter(v, SHARPNESS_SIGMA, mode="mirror")

    def cut(self, cutter, padded, coords, rng, *, zero=0.0, detail=None):
        """The patches of `coords`, as ``cutter.cut(padded, coords)``, augmented.

        Parameters
        ----------
        cutter : PatchCutter
            The kind's cutter.
        padded : numpy.ndarray
            ``cutter.pad(volume)`` (the normalised volume, padded).
        coords : array_like of int
            ``(N, 3)`` voxel indices in the unpadded volume.
        rng : numpy.random.Generator
            Every random draw comes from it.
        zero : float
            The normalised value of a raw 0 (:func:`~fastseg.data.normalization_zero`):
            the bias field scales values about it.
        detail : numpy.ndarray or None
            ``cutter.pad(Augment.detail(volume))``, the same shape as `padded`; needed
            when `sharpness` is on.

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            The cutter's layout, shapes and dtype (float32).
        """
        if not isinstance(cutter, PatchCutter):
            raise InvalidTypeError(f"cutter: expected a PatchCutter, got {type(cutter).__name__}")
        rng = _check_rng(rng)
        if self.sharpness:
            if detail is None:
                raise InvalidValueError("detail: sharpness is on, so cut needs the scan's "
                                        "padded detail, cutter.pad(Augment.detail(volume))")
            if np.shape(detail) != np.shape(padded):
                raise InvalidValueError(f"detail: shape {np.shape(detail)} is not the padded "
                                        f"scan's {np.shape(padded)}")
        draws = self._draw(rng, len(np.asarray(coords)))
        volumes = (padded, detail) if self.sharpness else (padded,)
        if self.geometric:
            cuts = _cut_transformed(cutter, volumes, coords, _matrices(cutter, draws))
        else:
            cuts = [cutter.cut(v, coords) for v in volumes]
        patches = cuts[0]
        if self.sharpness:
            _sharpen(patches, cuts[1], draws["sharpness"])
        return self._intensity(cutter, patches, draws, rng, float(zero))

    def apply_intensity(self, cutter, patches, rng, *, zero=0.0):
        """The intensity transforms (bias, gamma, noise) on patches already cut
        (sharpness needs the scan around them: :meth:`cut`).

        Parameters
        ----------
        cutter : PatchCutter
            The kind that cut them (its windows place the bias field).
        patches : numpy.ndarray or list of numpy.ndarray
            As ``cutter.cut`` returns them (not modified).
        rng : numpy.random.Generator
        zero : float
            As in :meth:`cut`.

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            New arrays, same layout; the same draws as :meth:`cut` would take.
        """
        if not isinstance(cutter, PatchCutter):
            raise InvalidTypeError(f"cutter: expected a PatchCutter, got {type(cutter).__name__}")
        rng = _check_rng(rng)
        arrays = patches if isinstance(patches, list) else [patches]
        n = len(arrays[0])
        draws = self._draw(rng, n)
        copied = [np.array(a, dtype=np.float32) for a in arrays]
        out = copied if isinstance(patches, list) else copied[0]
        return self._intensity(cutter, out, draws, rng, float(zero))

    def _draw(self, rng, n):
        """Every per-patch number, always drawn and always in this order."""
        return {
            "angles": rng.uniform(-1.0, 1.0, size=(n, 3)) * math.radians(self.rotate),
            "scales": 1.0 + rng.uniform(-1.0, 1.0, size=n) * self.scale,
            "bias": rng.uniform(-1.0, 1.0, size=(n, 2, 2, 2)) * math.log1p(self.bias),
            "phase": rng.uniform(0.0, 1.0, size=(n, 3)),
            "gamma": np.exp(rng.uniform(-1.0, 1.0, size=n) * math.log1p(self.gamma)),
            "noise": rng.uniform(0.0, 1.0, size=n) * self.noise,
            "sharpness": rng.uniform(-1.0, 1.0, size=n) * self.sharpness,
        }

    def _intensity(self, cutter, patches, draws, rng, zero):
        """bias, then gamma, then noise, in place on freshly cut arrays."""
        arrays = patches if isinstance(patches, list) else [patches]
        n = len(arrays[0])
        if n == 0:
            return patches
        if self.bias:
            for array, (axes, window) in zip(arrays, _windows_of(cutter, arrays), strict=True):
                field = _bias_field(axes, window, draws["bias"], draws["phase"],
                                    self.bias_length)
                flat = array.reshape(n, -1)
                flat -= zero
                flat *= field.reshape(n, -1)
                flat += zero
        if self.gamma:
            _gamma(arrays, draws["gamma"])
        if self.noise:
            for array in arrays:
                sigma = draws["noise"].astype(np.float32).reshape(n, *([1] * (array.ndim - 1)))
                array += sigma * rng.standard_normal(array.shape, dtype=np.float32)
        return patches


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise InvalidTypeError(f"rng: expected a numpy.random.Generator "
                               f"(numpy.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def _windows_of(cutter, arrays):
    """The cutter's windows, in the order of the packed arrays, as (axes, window shape)
    with the packed arrays' per-patch shape (a 2-D patch's channel axis dropped)."""
    windows = cutter._windows()
    if len(windows) != len(arrays):
        raise InvalidValueError(f"patches: expected {len(windows)} arrays for the "
                                f"{cutter.kind} kind, got {len(arrays)}")
    for (_, window), array in zip(windows, arrays, strict=True):
        if int(np.prod(array.shape[1:])) != int(np.prod(window)):
            raise InvalidValueError(f"patches: shape {array.shape} is not the {cutter.kind} "
                                    f"cutter's (N, ...) of {window}")
    return windows


def _offsets(axes, window) -> np.ndarray:
    """``(P, 3)`` float64 offsets from the centre voxel of each window voxel (C order),
    along the volume's axes: ``index - n // 2`` on the window's axes, 0 on the others."""
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in window], indexing="ij")
    out = np.zeros((int(np.prod(window)), 3))
    for axis, grid in zip(axes, grids, strict=True):
        out[:, axis] = grid.ravel()
    return out


def _rotation(angles) -> np.ndarray:
    """``(N, 3, 3)`` rotations: about axis 0, then 1, then 2 (angles in radians)."""
    n = len(angles)
    out = np.tile(np.eye(3), (n, 1, 1))
    for axis in range(3):
        a, b = [x for x in range(3) if x != axis]
        c, s = np.cos(angles[:, axis]), np.sin(angles[:, axis])
        r = np.tile(np.eye(3), (n, 1, 1))
        r[:, a, a], r[:, a, b], r[:, b, a], r[:, b, b] = c, -s, s, c
        out = r @ out
    return out


def _matrices(cutter, draws) -> np.ndarray:
    """``(N, 3, 3)`` maps from a patch offset to a volume offset: rotation times scale
    (2-D kinds: in their plane only)."""
    angles, scales = draws["angles"], draws["scales"]
    if isinstance(cutter, (Planar2D, Stacked2D)):
        n = len(angles)
        a, b = [x for x in range(3) if x != cutter.axis]
        c, s = np.cos(angles[:, 0]) * scales, np.sin(angles[:, 0]) * scales
        out = np.tile(np.eye(3), (n, 1, 1))
        out[:, a, a], out[:, a, b], out[:, b, a], out[:, b, b] = c, -s, s, c
        return out
    return _rotation(angles) * scales[:, None, None]


def _cut_transformed(cutter, volumes, coords, matrices) -> list:
    """The cutter's windows sampled on grids mapped by `matrices` about each voxel, for
    each of `volumes` (padded alike: a scan and its detail share the grid's arithmetic)."""
    checked = [cutter._check_padded(v) for v in volumes]
    _, widths, shape = checked[0]
    rc = check_coords(coords, shape, "(d, h, w) voxel indices").astype(np.float64)
    padded = [np.ascontiguousarray(c[0]) for c in checked]
    n = len(rc)
    out = [[] for _ in padded]
    for axes, window in cutter._windows():
        offsets = _offsets(axes, window)
        points = rc[:, None, :] + offsets @ matrices.transpose(0, 2, 1)  # (N, P, 3)
        values = _trilinear_mirror(padded, widths, shape, points.reshape(-1, 3))
        for o, v in zip(out, values, strict=True):
            o.append(v.reshape(n, *window))
    return [cutter._pack(o) for o in out]


def _reflect(index, n):
    """NumPy's ``"reflect"`` padding as an index rule (mirror about the edge voxel), to
    any distance."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def _trilinear_mirror(volumes, widths, shape, points) -> list:
    """Trilinear samples of each volume inside the padded `volumes` (a sequence of
    arrays of one shape) at ``(P, 3)`` voxel positions of the unpadded volume, the
    volume mirrored beyond its border (as the padding); one array per volume.

    Eight gathers from each flat padded array: two to three times faster than
    :func:`scipy.ndimage.map_coordinates` with ``mode="mirror"``, the same values to
    float32 rounding, and no SciPy needed. The corners' indices are made once for all.
    """
    padded = volumes[0]
    base = np.floor(points)
    frac = (points - base).astype(np.float32)
    base = base.astype(np.intp)
    strides = (padded.shape[1] * padded.shape[2], padded.shape[2], 1)
    # per axis: the flat offsets of the lower and the upper neighbour
    index = []
    for axis in range(3):
        before = widths[axis][0]
        lower = base[:, axis] + before
        upper = lower + 1
        # within the padding the padded array already holds the mirror image; only the
        # corners a rotation swings beyond it are reflected by arithmetic
        beyond = (lower < 0) | (upper >= padded.shape[axis])
        if beyond.any():
            lower[beyond] = _reflect(base[beyond, axis], shape[axis]) + before
            upper[beyond] = _reflect(base[beyond, axis] + 1, shape[axis]) + before
        index.append((lower * strides[axis], upper * strides[axis]))
    corners = {(a, b, c): index[0][a] + index[1][b] + index[2][c]
               for a in (0, 1) for b in (0, 1) for c in (0, 1)}

    def lerp(lo, hi, t):  # lo + t * (hi - lo), in place in lo: exact where t == 0
        hi -= lo
        hi *= t
        lo += hi
        return lo

    def sample(flat):
        planes = []
        for a in (0, 1):
            rows = [lerp(flat[corners[a, b, 0]], flat[corners[a, b, 1]], frac[:, 2])
                    for b in (0, 1)]
            planes.append(lerp(rows[0], rows[1], frac[:, 1]))
        return lerp(planes[0], planes[1], frac[:, 0])

    return [sample(v.reshape(-1)) for v in volumes]


def _bias_field(axes, window, corners, phase, length) -> np.ndarray:
    """``(N, P)`` float32 multiplicative field over a window's voxels (window order).

    The log-field is the trilinear interpolation of `corners` ``(N, 2, 2, 2)`` over a
    cell of side `length` voxels; the patch's centre sits at `phase` ``(N, 3)`` (in
    cell units) inside it. Patches wider than the cell see the same trilinear function
    continued (a smooth ramp), which is still low-frequency. Trilinear is separable, so
    it is made one axis at a time.
    """
    n = len(corners)
    extent = [1, 1, 1]
    for axis, size in zip(axes, window, strict=True):
        extent[axis] = size
    w = []
    for axis in range(3):
        u = phase[:, axis, None] + (np.arange(extent[axis]) - extent[axis] // 2) / length
        w.append(np.stack([1.0 - u, u], axis=-1))  # (N, m, 2): weights of corners 0, 1
    log_field = np.einsum("nabc,nkc->nabk", corners, w[2])
    log_field = np.einsum("nabk,njb->najk", log_field, w[1])
    log_field = np.einsum("najk,nia->nijk", log_field, w[0])  # (N, m0, m1, m2)
    # into the window's axis order (an axis outside the window has extent 1)
    order = [0] + [1 + a for a in axes] + [1 + a for a in range(3) if a not in axes]
    return np.exp(log_field.transpose(order).reshape(n, -1)).astype(np.float32)


def _sharpen(patches, details, amounts) -> None:
    """``patch += a * detail`` per patch, in place (the cutter's layout)."""
    arrays = patches if isinstance(patches, list) else [patches]
    parts = details if isinstance(details, list) else [details]
    for array, part in zip(arrays, parts, strict=True):
        a = amounts.astype(np.float32).reshape(len(array), *([1] * (array.ndim - 1)))
        array += a * part


def _gamma(arrays, gammas) -> None:
    """``lo + (hi - lo) * ((v - lo) / (hi - lo)) ** g`` per patch, in place; lo and hi
    over all of a patch's arrays (the tri-planar planes share them)."""
    n = len(arrays[0])
    flats = [a.reshape(n, -1) for a in arrays]
    lo = np.min([f.min(axis=1) for f in flats], axis=0)
    hi = np.max([f.max(axis=1) for f in flats], axis=0)
    span = hi - lo
    varied = span > 0  # a constant patch has no contrast to change
    g = gammas.astype(np.float32)[varied, None]
    for f in flats:
        part = f[varied]
        u = (part - lo[varied, None]) / span[varied, None]
        np.clip(u, 0.0, 1.0, out=u)  # rounding may step a hair outside [0, 1]
        f[varied] = lo[varied, None] + span[varied, None] * u ** g
