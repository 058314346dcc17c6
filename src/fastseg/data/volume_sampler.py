"""A seeded, class-balanced voxel-patch sampler for labelled volumes (crops or whole brains).

(:func:`normalize_volume` lived here; it is in :mod:`fastseg.data.intensity` now and
still importable from here.)"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from fastseg import _random, _validate
from fastseg._optional import require
from fastseg.errors import InvalidTypeError, InvalidValueError

from .augment import Augment
from .epochs import EpochSampler
from .intensity import NORMALIZATIONS, _normalize, normalize_volume
from .resample import bounding_box
from .volume_patches import PatchCutter, as_volume

__all__ = ["normalize_volume", "VolumePatchSampler", "BRAIN_NEGATIVES", "SHELL_MM",
           "LOOKALIKE_PERCENTILES"]

#: The background mix recommended for whole brains (pass ``**BRAIN_NEGATIVES``), as
#: shares of a batch's background. A whole brain is 700 times the hippocampus, and
#: random negatives there are mostly air and white matter, which teach nothing after
#: the first epoch; the errors of a whole-brain network are the grey matter next to the
#: hippocampus and grey matter elsewhere. So: a quarter at the boundary (``near``
#: voxels: where Dice is decided), 35 % in the shell 2-12 mm away (amygdala in front,
#: the temporal horn and choroid plexus, entorhinal and parahippocampal cortex, the
#: thalamus' pulvinar: what a network confuses with the hippocampus), 20 % look-alike
#: tissue anywhere (cortex and deep grey matter of the hippocampus' own intensities),
#: and the remaining 20 % uniform over the whole field of view, so nothing is never
#: seen. The constructor's own defaults (0 for the shell and the look-alikes) keep
#: today's batches bit for bit, for crops, where the whole crop is the boundary zone.
BRAIN_NEGATIVES = {"near_fraction": 0.25, "shell_fraction": 0.35, "lookalike_fraction": 0.2}
#: Distances (mm, to the nearest structure voxel centre) of the shell: from 2 mm, past
#: the partial-volume boundary, to 12 mm, the reach of the neighbours named above.
SHELL_MM = (2.0, 12.0)
#: A look-alike background voxel's value lies between these percentiles of the
#: structure's own values (5-95: the structure's body, not its partial-volume rim).
LOOKALIKE_PERCENTILES = (5.0, 95.0)
# The pools a batch is drawn from, in drawing order (the first three are today's).
_POOLS = ("pos", "near", "far", "shell", "lookalike")


def _dilate(mask, radius):
    """`mask` grown by `radius` voxels in every direction (a cube, Chebyshev distance)."""
    out = mask.copy()
    for axis in range(mask.ndim):
        grown = out.copy()
        n = out.shape[axis]
        for step in range(1, min(radius, n - 1) + 1):
            lo = [slice(None)] * mask.ndim
            hi = [slice(None)] * mask.ndim
            lo[axis], hi[axis] = slice(0, n - step), slice(step, n)
            grown[tuple(lo)] |= out[tuple(hi)]
            grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


def _shell(mask, spacing, lo, hi):
    """Background voxels whose distance (mm) to the nearest structure voxel lies in
    ``[lo, hi]``, as a bool volume. The distance transform runs only in the box that
    can reach `hi`, so a whole brain costs the structure's neighbourhood."""
    ndimage = require("scipy.ndimage", "VolumePatchSampler (shell negatives)")
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return out
    reach = [math.ceil(hi / s) + 1 for s in spacing]
    box = tuple(slice(max(b.start - r, 0), min(b.stop + r, n))
                for b, r, n in zip(box, reach, mask.shape, strict=True))
    distance = ndimage.distance_transform_edt(~mask[box], sampling=spacing)
    out[box] = (distance >= lo) & (distance <= hi)
    return out


def _lookalike(image, mask, percentiles):
    """Background voxels whose value lies within the structure's percentile range."""
    lo, hi = np.percentile(image[mask], percentiles)
    return (image >= lo) & (image <= hi) & ~mask


def _as_normalization(normalize) -> str:
    """``True``/``"zscore"``, ``"robust"``, or ``False``/``None``/``"none"`` (off)."""
    if normalize is True:
        return "zscore"
    if normalize is False or normalize is None:
        return "none"
    if isinstance(normalize, str) and normalize in (*NORMALIZATIONS, "none"):
        return normalize
    raise InvalidValueError(f"normalize: expected True, False or one of "
                            f"{[*NORMALIZATIONS, 'none']}, got {normalize!r}")


def _as_augment(augment):
    if augment is None or isinstance(augment, Augment):
        return augment
    if isinstance(augment, Mapping):
        return Augment.from_config(dict(augment))
    raise InvalidTypeError(f"augment: expected an Augment, its config() dict or None, got "
                           f"{type(augment).__name__}")


def _as_shell(shell):
    try:
        lo, hi = (float(v) for v in shell)
    except (TypeError, ValueError):
        raise InvalidValueError(f"shell: expected (min_mm, max_mm), got {shell!r}") from None
    if not 0 <= lo < hi < math.inf:
        raise InvalidValueError(f"shell: expected 0 <= min_mm < max_mm, finite, got {shell!r}")
    return lo, hi


class VolumePatchSampler(EpochSampler):
    """Class-balanced random voxel patches from labelled volumes, cut on the fly.

    Every batch holds ``round(batch_size * positive_fraction)`` structure voxels and
    background for the rest. Of the background, ``near_fraction`` lies within ``near``
    voxels of the structure (the boundary a network must learn), ``shell_fraction``
    in a shell ``shell`` mm away (the neighbours it confuses with the structure),
    ``lookalike_fraction`` anywhere with the structure's own intensities, and the rest
    anywhere at all (so it also learns that far-away tissue is not the structure). For
    crops the first and the last are enough (today's defaults); for whole brains see
    :data:`BRAIN_NEGATIVES`.

    Parameters
    ----------
    samples : sequence of VolumeSample
        Objects with ``.image`` ``(D, H, W)`` and ``.mask`` (same shape, bool); a
        ``.spacing`` (mm per axis, default 1) places the shell.
    cutter : PatchCutter
        The kind's cutter (:func:`~fastseg.data.make_cutter`); segmentation must use
        the same one.
    batch_size : int
    positive_fraction : float
        Share of structure voxels per batch (0.5: balanced).
    near_fraction : float
        Share of the background drawn near the structure.
    near : int
        Voxels (Chebyshev distance) that count as near the structure.
    normalize : bool or {"zscore", "robust", "none"}
        How each image is normalised first (segmentation must then do the same):
        True or ``"zscore"`` :func:`~fastseg.data.normalize_volume` (the default),
        ``"robust"`` :func:`~fastseg.data.normalize_brain`, False or ``"none"`` not at
        all.
    seed : int or None
        Batch ``b`` of epoch ``e`` comes from ``numpy.random.default_rng([seed, e,
        b])``, so batches do not depend on what was drawn before and a resumed
        training (``set_epoch``) gets the same stream. None takes the seed from
        fastseg's generator (:func:`fastseg.seed`) once, here, so that one
        ``fastseg.seed(n)`` fixes initialisation and data alike; the batches never
        draw from that generator, which belongs to initialisation and dropout and is
        restored from checkpoints.
    batches_per_epoch : int or None
        None: enough batches to draw every structure voxel once in expectation.
    shell_fraction : float
        Share of the background drawn from the shell (default 0: off).
    shell : (float, float)
        The shell's distances to the structure in mm (default :data:`SHELL_MM`, 2-12).
    lookalike_fraction : float
        Share of the background whose value lies within the structure's 5th-95th
        percentile (:data:`LOOKALIKE_PERCENTILES`; default 0: off).
    augment : Augment, its ``config()`` dict, or None
        Scanner differences imitated per patch (:class:`~fastseg.data.Augment`),
        drawn from ``default_rng([seed, e, b, 1])`` so the voxels of a batch are the
        same with and without it. None (default): the patches as cut, bit for bit.

    Notes
    -----
    It speaks :func:`fastseg.train.fit`'s protocol as :class:`~fastseg.data.PatchSampler`
    does: ``len()``, ``batch(epoch, index)`` -> ``(x, y)`` with ``x`` the cutter's
    network input (an array, or a list of three for the tri-planar kind) and ``y``
    ``(N,)`` int64 (1 = structure), iteration over the current epoch's batches, and
    ``set_epoch``. Only the normalised, padded volumes and the pools' voxel indices
    are kept. A background share whose pool is empty goes to the uniform one (or, when
    that is empty, to the near one). Near, shell and look-alike pools may overlap; each
    is drawn from by its own share.
    """

    def __init__(self, samples, cutter, batch_size=128, positive_fraction=0.5,
                 near_fraction=0.5, near=4, normalize=True, seed=None, batches_per_epoch=None,
                 *, shell_fraction=0.0, shell=SHELL_MM, lookalike_fraction=0.0, augment=None):
        if not isinstance(cutter, PatchCutter):
            raise InvalidTypeError(f"cutter: expected a PatchCutter (make_cutter(kind, size)), got "
                                   f"{type(cutter).__name__}")
        self.cutter = cutter
        self.batch_size = _validate.as_int("batch_size", batch_size, minimum=1)
        self.positive_fraction = _validate.as_real("positive_fraction", positive_fraction, 0, 1)
        self.near_fraction = _validate.as_real("near_fraction", near_fraction, 0, 1)
        self.near = _validate.as_int("near", near, minimum=1)
        self.shell_fraction = _validate.as_real("shell_fraction", shell_fraction, 0, 1)
        self.shell = _as_shell(shell)
        self.lookalike_fraction = _validate.as_real("lookalike_fraction", lookalike_fraction,
                                                    0, 1)
        shares = self.near_fraction + self.shell_fraction + self.lookalike_fraction
        if shares > 1 + 1e-9:
            raise InvalidValueError(f"near_fraction + shell_fraction + lookalike_fraction must "
                                    f"be <= 1 (shares of the background), got {shares:g}")
        self.normalization = _as_normalization(normalize)
        self.normalize = self.normalization != "none"
        self.augment = _as_augment(augment)
        if seed is None:
            seed = int(_random.get_rng().integers(2**63))
        self.seed = _validate.as_int("seed", seed, minimum=0)
        self.epoch = 0
        samples = list(samples)
        if not samples:
            raise InvalidValueError("samples is empty")
        self._padded, self._shapes, self._zeros, self._details = [], [], [], []
        pools = {pool: [] for pool in _POOLS}
        offset = 0
        for i, s in enumerate(samples):
            image, mask = self._checked(i, s)
            volume, zero = _normalize(image, self.normalization)
            try:
                self._padded.append(cutter.pad(volume))
            except ValueError as exc:
                raise InvalidValueError(f"samples[{i}] ({getattr(s, 'name', i)}): {exc}") from None
            if self.augment is not None and self.augment.sharpness:
                self._details.append(cutter.pad(self.augment.detail(volume)))
            self._shapes.append(image.shape)
            self._zeros.append(zero)
            for pool, where in self._pool_masks(s, image, mask).items():
                pools[pool].append(np.flatnonzero(where) + offset)
            offset += image.size
        self._offsets = np.cumsum([0] + [int(np.prod(sh)) for sh in self._shapes])
        # int32 indices where they fit: a whole brain's uniform pool is 7 million voxels
        index_type = np.int32 if offset < 2**31 else np.int64
        self._pools = {k: np.concatenate(v).astype(index_type) if v else
                       np.zeros(0, dtype=index_type) for k, v in pools.items()}
        self._counts = self._split_batch()
        if batches_per_epoch is None:
            per = max(self._counts["pos"], 1)
            batches_per_epoch = max(1, math.ceil(len(self._pools["pos"]) / per))
        self.batches_per_epoch = _validate.as_int("batches_per_epoch", batches_per_epoch,
                                                  minimum=1)

    def _checked(self, i, s):
        """(float32 image, bool mask) of sample `i`, or a named error."""
        image = np.asarray(s.image)
        mask = np.asarray(s.mask)
        if image.ndim != 3 or mask.shape != image.shape:
            raise InvalidValueError(f"samples[{i}]: image {image.shape} and mask {mask.shape} "
                                    "must be the same (D, H, W)")
        if mask.dtype != np.bool_:
            raise InvalidTypeError(f"samples[{i}].mask: expected bool, got dtype {mask.dtype}")
        try:
            image = as_volume(image)
        except ValueError as exc:
            raise InvalidValueError(f"samples[{i}] ({getattr(s, 'name', i)}): {exc}") from None
        return image, mask

    def _pool_masks(self, sample, image, mask):
        """Where each pool's voxels lie in one sample (the new pools only when asked)."""
        near_mask = _dilate(mask, self.near) & ~mask
        out = {"pos": mask, "near": near_mask, "far": ~mask & ~near_mask}
        if self.shell_fraction:
            spacing = tuple(float(v) for v in getattr(sample, "spacing", (1.0, 1.0, 1.0)))
            out["shell"] = _shell(mask, spacing, *self.shell)
        if self.lookalike_fraction and mask.any():
            out["lookalike"] = _lookalike(image, mask, LOOKALIKE_PERCENTILES)
        return out

    def _split_batch(self):
        n_pos = round(self.batch_size * self.positive_fraction)
        n_bg = self.batch_size - n_pos
        has = {pool: bool(len(self._pools[pool])) for pool in _POOLS}
        n_shell = min(round(n_bg * self.shell_fraction), n_bg) if has["shell"] else 0
        n_look = (min(round(n_bg * self.lookalike_fraction), n_bg - n_shell)
                  if has["lookalike"] else 0)
        rest = n_bg - n_shell - n_look
        # today's rule for what is left: near and far
        n_near = min(round(n_bg * self.near_fraction), rest)
        if not has["near"]:
            n_near = 0
        elif not has["far"]:
            n_near = rest
        counts = {"pos": n_pos, "near": n_near, "far": rest - n_near, "shell": n_shell,
                  "lookalike": n_look}
        for pool, n in counts.items():
            if n and not has[pool]:
                what = "structure" if pool == "pos" else "background"
                raise InvalidValueError(f"a batch needs {n} {what} voxels but no sample has one")
        return counts

    @property
    def in_channels(self):
        return self.cutter.in_channels

    @property
    def counts(self) -> dict[str, int]:
        """Voxels per batch from each pool: ``pos``, ``near``, ``far`` (uniform
        background), ``shell``, ``lookalike``."""
        return dict(self._counts)

    def positions(self, epoch, index, *, with_pools=False):
        """The voxels of batch `index` of `epoch`, without cutting patches.

        Returns
        -------
        sample_index : numpy.ndarray
            ``(N,)`` int64 index into the samples.
        coords : numpy.ndarray
            ``(N, 3)`` int64 ``(d, h, w)``.
        labels : numpy.ndarray
            ``(N,)`` int64, 1 for the structure.
        pools : numpy.ndarray
            Only with ``with_pools=True``: ``(N,)`` str, the pool each voxel was drawn
            from (:attr:`counts`' keys).
        """
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        flat, labels, names = [], [], []
        for pool in _POOLS:
            n = self._counts[pool]
            if n:
                values = self._pools[pool]
                flat.append(values[rng.integers(len(values), size=n)])
                labels.append(np.full(n, 1 if pool == "pos" else 0, dtype=np.int64))
                names.append(np.full(n, pool))
        flat, labels = np.concatenate(flat), np.concatenate(labels)
        perm = rng.permutation(len(flat))
        flat, labels = flat[perm], labels[perm]
        sample_index = np.searchsorted(self._offsets, flat, side="right") - 1
        coords = np.empty((len(flat), 3), dtype=np.int64)
        for i in np.unique(sample_index):
            sel = sample_index == i
            coords[sel] = np.stack(np.unravel_index(flat[sel] - self._offsets[i],
                                                    self._shapes[i]), axis=1)
        out = (sample_index.astype(np.int64), coords, labels)
        return (*out, np.concatenate(names)[perm]) if with_pools else out

    def batch(self, epoch, index):
        """Batch `index` of `epoch`: ``(x, y)`` as the cutter lays ``x`` out."""
        sample_index, coords, labels = self.positions(epoch, index)
        rng = (None if self.augment is None
               else np.random.default_rng([self.seed, int(epoch), int(index), 1]))
        x, listed = None, False
        for i in np.unique(sample_index):
            sel = sample_index == i
            if rng is None:
                part = self.cutter.cut(self._padded[i], coords[sel])
            else:
                part = self.augment.cut(self.cutter, self._padded[i], coords[sel], rng,
                                        zero=self._zeros[i],
                                        detail=self._details[i] if self._details else None)
            listed = isinstance(part, list)
            parts = part if listed else [part]
            if x is None:
                x = [np.empty((len(labels), *p.shape[1:]), dtype=np.float32) for p in parts]
            for out, p in zip(x, parts, strict=True):
                out[sel] = p
        return (x if listed else x[0]), labels

    def __repr__(self):
        extra = ""
        if self.shell_fraction or self.lookalike_fraction:
            extra += (f", shell_fraction={self.shell_fraction}, shell={self.shell}, "
                      f"lookalike_fraction={self.lookalike_fraction}")
        if self.normalization not in ("zscore", "none"):
            extra += f", normalize={self.normalization!r}"
        if self.augment is not None:
            extra += f", augment={self.augment!r}"
        return (f"VolumePatchSampler(n_volumes={len(self._padded)}, cutter={self.cutter!r}, "
                f"batch_size={self.batch_size}, positive_fraction={self.positive_fraction}, "
                f"near_fraction={self.near_fraction}, near={self.near}, seed={self.seed}, "
                f"batches_per_epoch={self.batches_per_epoch}{extra})")
