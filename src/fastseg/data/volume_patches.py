"""The patch cutters of the report's four network kinds, shared by training and dense
segmentation so both see exactly the same voxels.

Each kind is one class with the contract of the 2-D cutter
(:func:`~fastseg.data.pad_for_patches` / :func:`~fastseg.data.patches_from_padded`):
``pad(volume)`` once, then ``cut(padded, coords)`` many times. A window of ``n``
voxels along an axis puts the voxel at index ``n // 2`` (the centre for odd ``n``,
one past the middle for even ``n``), and the volume is mirrored beyond its border
with NumPy's ``"reflect"`` mode (the edge voxel is not repeated), exactly as
:func:`~fastseg.data.patches_at` does in 2-D. A volume is ``(D, H, W)`` (axes 0, 1, 2)
and coordinates are ``(N, 3)`` integer voxel indices ``(d, h, w)``.

===============  ==========================================  ===========================
kind             patch of voxel ``v``                        network input
===============  ==========================================  ===========================
``"2d"``         ``size`` x ``size`` in the plane normal to  ``(N, 1, K, K)``
                 ``axis`` (the other two axes, in order)
``"stacked2d"``  that patch in ``slices`` adjacent planes    ``(N, slices, K, K)``
                 along ``axis``, as channels
``"triplanar"``  the three 2-D patches, normal to axes 0,   list of 3 ``(N, 1, K, K)``
                 1 and 2                                     (for :class:`nn.Parallel`)
``"3d"``         the ``size``-cube                           ``(N, 1, K, K, K)``
===============  ==========================================  ===========================
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fastseg import _validate
from fastseg.errors import InvalidTypeError, InvalidValueError

from .patches import PAD_MODE, check_coords

__all__ = ["PatchCutter", "Planar2D", "Stacked2D", "TriPlanar", "Cube3D", "make_cutter",
           "CUTTER_KINDS"]

#: What a row of ``coords`` holds, for the messages.
_AXES = "(d, h, w) voxel indices"


def as_volume(volume, name="volume"):
    """`volume` as a non-empty, finite ``(D, H, W)`` float32 array, or a named error."""
    arr = _validate.as_float32(name, volume, ndim=3, layout="(D, H, W)")
    if arr.size == 0:
        raise InvalidValueError(f"{name}: expected a non-empty (D, H, W) volume, got shape "
                                f"{arr.shape}")
    _validate.check_finite(name, arr)
    return arr


class PatchCutter:
    """Base of the four cutters: a window per axis, reflect padding, the centre rule.

    Subclasses set :attr:`kind` and say which windows they cut from the one padded
    volume (:meth:`_windows`); everything else is shared.
    """

    kind = ""

    def __init__(self, size):
        self.size = _validate.as_int("size", size, minimum=1)

    # -- what a subclass defines -------------------------------------------------
    def _windows(self):
        """``[(axes, window_shape), ...]``: one entry per network input, each window's
        axes in output order."""
        raise NotImplementedError

    def _pack(self, cut):
        """The network input from the per-window arrays ``(N, *window_shape)``."""
        raise NotImplementedError

    def config(self) -> dict:
        """The keyword arguments of :func:`make_cutter` that rebuild this cutter."""
        return {"kind": self.kind, "size": self.size}

    # -- shared ------------------------------------------------------------------
    def extent(self) -> tuple[int, int, int]:
        """Voxels spanned along axes 0, 1, 2 by the union of this kind's windows."""
        span = [1, 1, 1]
        for axes, shape in self._windows():
            for axis, n in zip(axes, shape, strict=True):
                span[axis] = max(span[axis], n)
        return tuple(span)

    def pad_widths(self) -> tuple[tuple[int, int], ...]:
        """``((before, after),) * 3``: the padding :meth:`pad` adds on each axis."""
        return tuple((n // 2, n - 1 - n // 2) for n in self.extent())

    def pad(self, volume) -> np.ndarray:
        """The volume mirrored at its borders so that every voxel's patch is a slice.

        Parameters
        ----------
        volume : array_like
            ``(D, H, W)`` real values, finite (converted to float32).

        Returns
        -------
        numpy.ndarray
            float32, ``(D + before + after, ...)`` per :meth:`pad_widths`.

        Raises
        ------
        ValueError
            A volume that is not 3-D, is empty, holds NaN or infinity, or is smaller
            than the patch along an axis the patch spans.
        """
        arr = as_volume(volume)
        self.check_fits(arr.shape)
        return np.pad(arr, self.pad_widths(), mode=PAD_MODE)

    def check_fits(self, shape, name="volume") -> None:
        """Refuse a volume `shape` smaller than this kind's patch along an axis it spans
        (reflection needs at least the patch's extent; :meth:`pad` checks this)."""
        for axis, (n, need) in enumerate(zip(shape, self.extent(), strict=True)):
            if n < need:
                raise InvalidValueError(f"{name}: shape {tuple(shape)} is smaller than the "
                                        f"{self.kind} patch along axis {axis} ({n} < {need} "
                                        "voxels)")

    def cut(self, padded, coords):
        """The patches of the given voxels, from a volume padded by :meth:`pad`.

        Parameters
        ----------
        padded : numpy.ndarray
            The output of ``self.pad(volume)``.
        coords : array_like of int
            ``(N, 3)`` voxel indices ``(d, h, w)`` in the *unpadded* volume.

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            float32, C-contiguous; the layout of the kind (module docstring).
        """
        padded, widths, shape = self._check_padded(padded)
        rc = check_coords(coords, shape, _AXES)
        out = []
        for axes, window in self._windows():
            views = sliding_window_view(padded, window, axis=axes)
            # Along a window's axes the slice starts at v - n//2 + before = v; along
            # the others the voxel itself sits at v + before.
            index = tuple(rc[:, a] + (0 if a in axes else widths[a][0]) for a in range(3))
            out.append(np.ascontiguousarray(views[index], dtype=np.float32))
        return self._pack(out)

    def _check_padded(self, padded):
        """`padded`, checked to be an output of :meth:`pad`: ``(the array, pad_widths(), the
        shape of the volume inside it)``."""
        padded = np.asarray(padded)
        widths = self.pad_widths()
        if padded.ndim != 3 or padded.dtype != np.float32:
            raise InvalidValueError(f"padded: expected the float32 3-D output of pad(), got shape "
                                    f"{padded.shape} dtype {padded.dtype}")
        shape = tuple(n - b - a for n, (b, a) in zip(padded.shape, widths, strict=True))
        if min(shape) < 1:
            raise InvalidValueError(f"padded: shape {padded.shape} is smaller than this cutter's "
                                    f"padding {widths}")
        return padded, widths, shape

    def __call__(self, volume, coords):
        """``cut(pad(volume), coords)``: the patches of the given voxels."""
        arr = as_volume(volume)
        check_coords(coords, arr.shape, _AXES)  # fail before padding
        return self.cut(self.pad(arr), coords)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "kind")
        return f"{type(self).__name__}({args})"


def _check_axis(axis):
    axis = _validate.as_int("axis", axis)
    if axis not in (0, 1, 2):
        raise InvalidValueError(f"axis: must be 0, 1 or 2 (the plane's normal), got {axis}")
    return axis


def _in_plane(axis):
    return tuple(a for a in range(3) if a != axis)


class Planar2D(PatchCutter):
    """2-D patches in the plane normal to `axis` (the report's 2-D network).

    Parameters
    ----------
    size : int
        Patch side K.
    axis : {0, 1, 2}
        The axis the plane is normal to; the patch's rows and columns run along the
        other two axes in increasing order (axis 0: a ``(H, W)`` patch of slice ``d``).
    """

    kind = "2d"

    def __init__(self, size, axis=0):
        super().__init__(size)
        self.axis = _check_axis(axis)

    def _windows(self):
        return [(_in_plane(self.axis), (self.size, self.size))]

    def _pack(self, cut):
        return cut[0][:, None]

    def config(self):
        return {**super().config(), "axis": self.axis}

    @property
    def in_channels(self):
        return 1


class Stacked2D(PatchCutter):
    """The 2-D patch in `slices` adjacent planes along `axis`, stacked as channels.

    Parameters
    ----------
    size : int
        Patch side K.
    axis : {0, 1, 2}
        The slicing axis (normal of the planes).
    slices : int
        Planes per patch; the voxel's own plane is channel ``slices // 2`` (3: the
        plane before, the voxel's plane, the plane after).
    """

    kind = "stacked2d"

    def __init__(self, size, axis=0, slices=3):
        super().__init__(size)
        self.axis = _check_axis(axis)
        self.slices = _validate.as_int("slices", slices, minimum=1)

    def _windows(self):
        return [((self.axis, *_in_plane(self.axis)), (self.slices, self.size, self.size))]

    def _pack(self, cut):
        return cut[0]

    def config(self):
        return {**super().config(), "axis": self.axis, "slices": self.slices}

    @property
    def in_channels(self):
        return self.slices


class TriPlanar(PatchCutter):
    """The three orthogonal 2-D patches through a voxel, normal to axes 0, 1 and 2.

    The network input is a list of three ``(N, 1, K, K)`` arrays in that order, the
    input of :func:`fastseg.models.lai_triplanar` (:class:`fastseg.nn.Parallel`).
    """

    kind = "triplanar"

    def _windows(self):
        return [(_in_plane(axis), (self.size, self.size)) for axis in range(3)]

    def _pack(self, cut):
        return [c[:, None] for c in cut]

    @property
    def in_channels(self):
        return 1


class Cube3D(PatchCutter):
    """The ``size``-cube around a voxel (the report's 3-D network): ``(N, 1, K, K, K)``."""

    kind = "3d"

    def _windows(self):
        return [((0, 1, 2), (self.size,) * 3)]

    def _pack(self, cut):
        return cut[0][:, None]

    @property
    def in_channels(self):
        return 1


#: kind name -> cutter class.
CUTTER_KINDS = {cls.kind: cls for cls in (Planar2D, Stacked2D, TriPlanar, Cube3D)}


def make_cutter(kind, size, **options) -> PatchCutter:
    """The cutter of a network kind: ``make_cutter(**cutter.config())`` rebuilds `cutter`.

    Parameters
    ----------
    kind : {"2d", "stacked2d", "triplanar", "3d"}
    size : int
        Patch side K.
    **options
        ``axis`` (2d, stacked2d), ``slices`` (stacked2d).
    """
    if kind not in CUTTER_KINDS:
        raise InvalidValueError(f"kind must be one of {sorted(CUTTER_KINDS)}, got {kind!r}")
    try:
        return CUTTER_KINDS[kind](size, **options)
    except TypeError as exc:
        if "argument" in str(exc):
            raise InvalidTypeError(f"make_cutter({kind!r}): {exc}") from None
        raise
