"""Intensity normalisation of scans and a seeded, class-balanced voxel-patch sampler."""

from __future__ import annotations

import math

import numpy as np

from fastseg import _random, _validate
from fastseg.errors import InvalidTypeError, InvalidValueError

from .epochs import EpochSampler
from .volume_patches import PatchCutter, as_volume

__all__ = ["normalize_volume", "VolumePatchSampler"]


def normalize_volume(volume) -> np.ndarray:
    """A scan's intensities as z-scores over its non-zero voxels.

    ``(v - mean) / std`` with the mean and standard deviation of the voxels that are
    not exactly 0, applied to every voxel. MRI intensities have no absolute scale
    (the two built-in templates differ by a factor of about 80), and brain-extracted
    scans and crops near the brain's edge hold zeros outside the head; leaving those
    out of the statistics makes them independent of how much background a crop has,
    and the zeros stay darker than any tissue, as in the scan. A constant scan is
    only centred.

    Parameters
    ----------
    volume : array_like
        ``(D, H, W)`` finite real values.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    ValueError
        Not 3-D, empty, NaN/infinite values, or every voxel 0.
    """
    arr = as_volume(volume)
    signal = arr[arr != 0].astype(np.float64)
    if signal.size == 0:
        raise InvalidValueError("volume: every voxel is 0; nothing to normalise")
    std = signal.std()
    return ((arr - signal.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


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


class VolumePatchSampler(EpochSampler):
    """Class-balanced random voxel patches from labelled volumes, cut on the fly.

    Every batch holds ``round(batch_size * positive_fraction)`` structure voxels and
    background for the rest; of the background, ``near_fraction`` lies within
    ``near`` voxels of the structure (the boundary a network must learn) and the rest
    anywhere else (so it also learns that far-away tissue is not the structure).

    Parameters
    ----------
    samples : sequence of VolumeSample
        Objects with ``.image`` ``(D, H, W)`` and ``.mask`` (same shape, bool).
    cutter : PatchCutter
        The kind's cutter (:func:`~fastseg.data.make_cutter`); segmentation must use
        the same one.
    batch_size : int
    positive_fraction : float
        Share of structure voxels per batch (0.5: balanced).
    near_fraction : float
        Share of the background drawn near the structure. When one of the two
        background pools is empty its share goes to the other.
    near : int
        Voxels (Chebyshev distance) that count as near the structure.
    normalize : bool
        Apply :func:`normalize_volume` to each image first (segmentation must then do
        the same).
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

    Notes
    -----
    It speaks :func:`fastseg.train.fit`'s protocol as :class:`~fastseg.data.PatchSampler`
    does: ``len()``, ``batch(epoch, index)`` -> ``(x, y)`` with ``x`` the cutter's
    network input (an array, or a list of three for the tri-planar kind) and ``y``
    ``(N,)`` int64 (1 = structure), iteration over the current epoch's batches, and
    ``set_epoch``. Only the normalised, padded volumes are kept.
    """

    def __init__(self, samples, cutter, batch_size=128, positive_fraction=0.5,
                 near_fraction=0.5, near=4, normalize=True, seed=None, batches_per_epoch=None):
        if not isinstance(cutter, PatchCutter):
            raise InvalidTypeError(f"cutter: expected a PatchCutter (make_cutter(kind, size)), got "
                                   f"{type(cutter).__name__}")
        self.cutter = cutter
        self.batch_size = _validate.as_int("batch_size", batch_size, minimum=1)
        self.positive_fraction = _validate.as_real("positive_fraction", positive_fraction, 0, 1)
        self.near_fraction = _validate.as_real("near_fraction", near_fraction, 0, 1)
        self.near = _validate.as_int("near", near, minimum=1)
        self.normalize = bool(normalize)
        if seed is None:
            seed = int(_random.get_rng().integers(2**63))
        self.seed = _validate.as_int("seed", seed, minimum=0)
        self.epoch = 0
        samples = list(samples)
        if not samples:
            raise InvalidValueError("samples is empty")
        self._padded, self._shapes = [], []
        pools = {"pos": [], "near": [], "far": []}
        offset = 0
        for i, s in enumerate(samples):
            image = np.asarray(s.image)
            mask = np.asarray(s.mask)
            if image.ndim != 3 or mask.shape != image.shape:
                raise InvalidValueError(f"samples[{i}]: image {image.shape} and mask {mask.shape} "
                                        "must be the same (D, H, W)")
            if mask.dtype != np.bool_:
                raise InvalidTypeError(f"samples[{i}].mask: expected bool, got dtype {mask.dtype}")
            volume = normalize_volume(image) if self.normalize else image
            try:
                self._padded.append(cutter.pad(volume))
            except ValueError as exc:
                raise InvalidValueError(f"samples[{i}] ({getattr(s, 'name', i)}): {exc}") from None
            self._shapes.append(image.shape)
            near_mask = _dilate(mask, self.near) & ~mask
            pools["pos"].append(np.flatnonzero(mask) + offset)
            pools["near"].append(np.flatnonzero(near_mask) + offset)
            pools["far"].append(np.flatnonzero(~mask & ~near_mask) + offset)
            offset += image.size
        self._offsets = np.cumsum([0] + [int(np.prod(sh)) for sh in self._shapes])
        self._pools = {k: np.concatenate(v).astype(np.int64) for k, v in pools.items()}
        self._counts = self._split_batch()
        if batches_per_epoch is None:
            per = max(self._counts["pos"], 1)
            batches_per_epoch = max(1, math.ceil(len(self._pools["pos"]) / per))
        self.batches_per_epoch = _validate.as_int("batches_per_epoch", batches_per_epoch,
                                                  minimum=1)

    def _split_batch(self):
        n_pos = round(self.batch_size * self.positive_fraction)
        n_bg = self.batch_size - n_pos
        n_near = round(n_bg * self.near_fraction)
        if not len(self._pools["near"]):
            n_near = 0
        elif not len(self._pools["far"]):
            n_near = n_bg
        counts = {"pos": n_pos, "near": n_near, "far": n_bg - n_near}
        for pool, n in counts.items():
            if n and not len(self._pools[pool]):
                what = "structure" if pool == "pos" else "background"
                raise InvalidValueError(f"a batch needs {n} {what} voxels but no sample has one")
        return counts

    @property
    def in_channels(self):
        return self.cutter.in_channels

    def positions(self, epoch, index):
        """The voxels of batch `index` of `epoch`, without cutting patches.

        Returns
        -------
        sample_index : numpy.ndarray
            ``(N,)`` int64 index into the samples.
        coords : numpy.ndarray
            ``(N, 3)`` int64 ``(d, h, w)``.
        labels : numpy.ndarray
            ``(N,)`` int64, 1 for the structure.
        """
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        flat, labels = [], []
        for pool, label in (("pos", 1), ("near", 0), ("far", 0)):
            n = self._counts[pool]
            if n:
                values = self._pools[pool]
                flat.append(values[rng.integers(len(values), size=n)])
                labels.append(np.full(n, label, dtype=np.int64))
        flat, labels = np.concatenate(flat), np.concatenate(labels)
        perm = rng.permutation(len(flat))
        flat, labels = flat[perm], labels[perm]
        sample_index = np.searchsorted(self._offsets, flat, side="right") - 1
        coords = np.empty((len(flat), 3), dtype=np.int64)
        for i in np.unique(sample_index):
            sel = sample_index == i
            coords[sel] = np.stack(np.unravel_index(flat[sel] - self._offsets[i],
                                                    self._shapes[i]), axis=1)
        return sample_index.astype(np.int64), coords, labels

    def batch(self, epoch, index):
        """Batch `index` of `epoch`: ``(x, y)`` as the cutter lays ``x`` out."""
        sample_index, coords, labels = self.positions(epoch, index)
        x, listed = None, False
        for i in np.unique(sample_index):
            sel = sample_index == i
            part = self.cutter.cut(self._padded[i], coords[sel])
            listed = isinstance(part, list)
            parts = part if listed else [part]
            if x is None:
                x = [np.empty((len(labels), *p.shape[1:]), dtype=np.float32) for p in parts]
            for out, p in zip(x, parts, strict=True):
                out[sel] = p
        return (x if listed else x[0]), labels

    def __repr__(self):
        return (f"VolumePatchSampler(n_volumes={len(self._padded)}, cutter={self.cutter!r}, "
                f"batch_size={self.batch_size}, positive_fraction={self.positive_fraction}, "
                f"near_fraction={self.near_fraction}, near={self.near}, seed={self.seed}, "
                f"batches_per_epoch={self.batches_per_epoch})")
