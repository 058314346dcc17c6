"""The epoch protocol that :func:`fastseg.train.fit` reads from a patch sampler."""

from __future__ import annotations

from fastseg import _validate

__all__ = ["EpochSampler"]


class EpochSampler:
    """Base of the patch samplers: batches addressed by (epoch, index).

    A subclass sets ``batches_per_epoch`` and ``epoch`` and defines
    ``batch(epoch, index) -> (x, y)``, drawing each batch from its own generator seeded
    by ``(seed, epoch, index)``; this class adds ``len()``, iteration over the current
    epoch (which then advances ``epoch``, so ``for epoch in range(E): for x, y in
    sampler:`` sees fresh batches) and ``set_epoch`` for resuming.
    """

    batches_per_epoch: int
    epoch: int

    def batch(self, epoch, index):
        raise NotImplementedError

    def __len__(self):
        return self.batches_per_epoch

    def set_epoch(self, epoch):
        """Make the next iteration yield the batches of ``epoch`` (for resuming)."""
        self.epoch = _validate.as_int("epoch", epoch, minimum=0)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        for b in range(self.batches_per_epoch):
            yield self.batch(epoch, b)
