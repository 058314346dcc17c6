"""A seeded, class-balanced patch sampler for training."""

from __future__ import annotations

import math

import numpy as np

from fastseg import _validate
from fastseg.errors import InvalidValueError

from .epochs import EpochSampler
from .patches import pad_for_patches, patches_from_padded
from .preprocess import CHANNELS, check_channels, preprocess

__all__ = ["PatchSampler"]


def _odd(size):
    return size if size % 2 else size + 1


class PatchSampler(EpochSampler):
    """Class-balanced random patches from a set of images, drawn on the fly.

    Parameters
    ----------
    samples : sequence of Sample
        Objects with ``.image``, ``.mask`` and ``.fov``, the FOV read as every FOV in
        fastseg is (:func:`fastseg._validate.as_fov`: non-zero inside, None the whole
        image).
    size : int, optional
        Patch side K (the convention of :func:`~fastseg.data.patches_at`).
    batch_size : int, optional
        Patches per batch.
    channels : {"green", "grey", "rgb"}, optional
        Passed to :func:`preprocess`.
    positive_fraction : float or None, optional
        Fraction of vessel patches in each batch (exactly ``round(batch_size * f)``);
        None draws pixels uniformly from the FOV, i.e. the natural class ratio.
    augment : bool, optional
        Apply a random element of the 8 flips/rotations (dihedral group) to each
        patch. The transform is about the labelled pixel: even sizes are cut one
        larger, transformed and cropped back, so the pixel stays at index ``size // 2``.
    seed : int, optional
        Non-negative seed.
    batches_per_epoch : int or None, optional
        ``len(sampler)``. None: enough batches to draw every vessel pixel once in
        expectation, ``ceil(n_vessel_pixels / (batch_size * positive_fraction))``
        (or every FOV pixel once when ``positive_fraction`` is None).

    Notes
    -----
    Batch ``b`` of epoch ``e`` comes from ``default_rng([seed, e, b])``, so batches do
    not depend on what was drawn before: a resumed training calls ``set_epoch(e)``
    and gets the same stream. Iterating the sampler yields the batches of the
    current epoch and then advances ``epoch`` by one, so a plain
    ``for epoch in range(E): for X, y in sampler:`` sees fresh batches each epoch.
    Only the preprocessed, padded images are kept in memory (not the patches).

    Examples
    --------
    >>> sampler = PatchSampler(synthetic_fundus(4), size=24, batch_size=64)  # doctest: +SKIP
    >>> X, y = next(iter(sampler))   # X (64, 1, 24, 24) float32, y (64,) int64
    """

    def __init__(self, samples, size=24, batch_size=128, channels="green",
                 positive_fraction=0.5, augment=True, seed=0, batches_per_epoch=None):
        self.size = _validate.as_int("size", size, minimum=1)
        self.batch_size = _validate.as_int("batch_size", batch_size, minimum=1)
        self.channels = check_channels(channels)
        if positive_fraction is not None:
            positive_fraction = _validate.as_real("positive_fraction", positive_fraction, 0, 1)
        self.positive_fraction = positive_fraction
        self.augment = bool(augment)
        self.seed = _validate.as_int("seed", seed, minimum=0)
        self.epoch = 0
        samples = list(samples)
        if not samples:
            raise InvalidValueError("samples is empty")

        # Positions are stored as flat indices into the concatenation of all images
        # (int32 when it fits) so that drawing is one rng.integers call per class.
        cut = _odd(self.size)
        self._padded, self._shapes, pos, neg, offsets = [], [], [], [], [0]
        for i, s in enumerate(samples):
            image = np.asarray(s.image)
            hw = image.shape[:2]
            mask = np.asarray(s.mask)
            if mask.shape != hw:
                raise InvalidValueError(f"samples[{i}].mask has shape {mask.shape}, image has {hw}")
            fov = _validate.as_fov(getattr(s, "fov", None), hw, name=f"samples[{i}].fov",
                                   need_inside=True)
            mask = mask.astype(bool) & fov
            self._padded.append(pad_for_patches(preprocess(image, fov, channels), cut))
            self._shapes.append(hw)
            pos.append(np.flatnonzero(mask) + offsets[-1])
            neg.append(np.flatnonzero(fov & ~mask) + offsets[-1])
            offsets.append(offsets[-1] + hw[0] * hw[1])
        dtype = np.int32 if offsets[-1] < 2**31 else np.int64
        self._pos = np.concatenate(pos).astype(dtype)
        self._neg = np.concatenate(neg).astype(dtype)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        n_pos = round(self.batch_size * positive_fraction) if positive_fraction is not None else 0
        if positive_fraction is not None and n_pos and not len(self._pos):
            raise InvalidValueError("positive_fraction > 0 but no sample has a vessel pixel in "
                                    "its FOV")
        if positive_fraction is not None and self.batch_size - n_pos and not len(self._neg):
            raise InvalidValueError("positive_fraction < 1 but no sample has a background FOV "
                                    "pixel")
        if positive_fraction is None and not (len(self._pos) + len(self._neg)):
            raise InvalidValueError("no sample has a pixel inside its FOV")
        self._n_pos = n_pos
        if batches_per_epoch is None:
            if positive_fraction:
                per = self.batch_size * positive_fraction
                batches_per_epoch = math.ceil(len(self._pos) / per)
            else:
                batches_per_epoch = math.ceil((len(self._pos) + len(self._neg)) / self.batch_size)
            batches_per_epoch = max(1, batches_per_epoch)
        self.batches_per_epoch = _validate.as_int("batches_per_epoch", batches_per_epoch,
                                                  minimum=1)

    @property
    def in_channels(self):
        """Number of channels C of the patches."""
        return CHANNELS[self.channels]

    def positions(self, epoch, index):
        """The pixels of batch ``index`` of ``epoch``, without cutting patches.

        Returns
        -------
        image_index : numpy.ndarray
            ``(N,)`` int64 index into ``samples``.
        coords : numpy.ndarray
            ``(N, 2)`` int64 ``(row, col)``.
        labels : numpy.ndarray
            ``(N,)`` int64, 1 for vessel.
        rng : numpy.random.Generator
            The batch's generator, positioned after the draws (used for augmentation).
        """
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        if self.positive_fraction is None:
            total = len(self._pos) + len(self._neg)
            pick = rng.integers(total, size=self.batch_size)
            # Treat the two lists as one: indices below len(pos) are vessel pixels.
            is_pos = pick < len(self._pos)
            flat = np.where(is_pos, self._pos[np.minimum(pick, len(self._pos) - 1)],
                            self._neg[np.maximum(pick - len(self._pos), 0)])
            labels = is_pos.astype(np.int64)
        else:
            n_pos = self._n_pos
            flat = np.concatenate([
                self._pos[rng.integers(len(self._pos), size=n_pos)] if n_pos else np.empty(0, int),
                self._neg[rng.integers(len(self._neg), size=self.batch_size - n_pos)]
                if self.batch_size - n_pos else np.empty(0, int),
            ]).astype(np.int64)
            labels = np.repeat(np.array([1, 0], dtype=np.int64), [n_pos, self.batch_size - n_pos])
            perm = rng.permutation(self.batch_size)
            flat, labels = flat[perm], labels[perm]
        flat = flat.astype(np.int64)
        image_index = np.searchsorted(self._offsets, flat, side="right") - 1
        local = flat - self._offsets[image_index]
        widths = np.array([s[1] for s in self._shapes], dtype=np.int64)[image_index]
        coords = np.stack([local // widths, local % widths], axis=1)
        return image_index.astype(np.int64), coords, labels, rng

    def batch(self, epoch, index):
        """Batch ``index`` of ``epoch``: ``(X (N, C, K, K) float32, y (N,) int64)``."""
        image_index, coords, labels, rng = self.positions(epoch, index)
        cut = _odd(self.size)
        x = np.empty((len(labels), self.in_channels, cut, cut), dtype=np.float32)
        for i in np.unique(image_index):
            sel = image_index == i
            x[sel] = patches_from_padded(self._padded[i], coords[sel], cut)
        if self.augment:
            # A random dihedral transform per patch: optional transpose, then k quarter
            # turns. Cut patches are odd-sized, so the centre pixel stays put.
            transpose = rng.random(len(x)) < 0.5
            x[transpose] = x[transpose].transpose(0, 1, 3, 2)
            turns = rng.integers(4, size=len(x))
            for k in (1, 2, 3):
                sel = turns == k
                x[sel] = np.rot90(x[sel], k, axes=(2, 3))
        if cut != self.size:
            # Even size: the odd window is centred on the pixel at index size // 2, so
            # dropping its last row and column gives exactly the patches_at window.
            x = np.ascontiguousarray(x[:, :, : self.size, : self.size])
        return x, labels

    def __repr__(self):
        return (f"PatchSampler(n_images={len(self._padded)}, size={self.size}, "
                f"batch_size={self.batch_size}, channels={self.channels!r}, "
                f"positive_fraction={self.positive_fraction}, augment={self.augment}, "
                f"seed={self.seed}, batches_per_epoch={self.batches_per_epoch})")
