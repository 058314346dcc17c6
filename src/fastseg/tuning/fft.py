"""Dense inference's FFT settings, measured on this CPU (``fastseg tune`` calls
:func:`tunables`).

Each tunable is ``(name, candidates, measure)``: ``candidates[0]`` is the default of
:data:`fastseg._inference.cost.SETTINGS`, ``measure(candidate)`` the CPU seconds of one
thread running the paper's shapes with it (lai2d's fully connected layer as a 16x16
convolution over 50 channels, with tanh and the 2-unit layer fused; 200 of its 1000
filters, which keeps the spectra at 74 MB and each run near 50 ms: every filter is the
same work, so the ratios are the whole layer's). :mod:`fastseg._inference.cost` reads the
winners with :func:`fastseg.tuning.cache.get`.

- ``fft.mults``: 3 (Gauss) or 4 real products per complex one in the per-bin products.
- ``fft.chunk``: the kernel's blocking (output blocks per task); no result depends on
  it. Not its filter group: a group never spans two of the kernel's 8 filter slices,
  25 filters each here, so every group above 28 would time the same.
- ``fft.margin``: how much faster ``auto`` must estimate the FFT to take it, timed as a
  whole dense segmentation of a small image (which layers go by FFT).

A tuned ``fft.mults`` or ``fft.margin`` changes results at rounding level (another
product, or layer on the FFT), the same in every run. The FFT lengths are not tuned
(:data:`fastseg._inference.cost.TUNED` says why).
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["tunables", "LAYER", "MAP"]

#: (filters, channels, kernel): lai2d's fully connected layer cut to 200 filters.
LAYER = (200, 50, 16)
#: Output pixels of the layer timed for the kernel's settings: 8 x 8 blocks of 25 x 30
#: at the default 40 x 45 transform, two chunks of 32 blocks.
MAP = (200, 240)
_SHAPE = (40, 45)


class _Bench:
    """The timed layer, made on first use and kept (spectra per FFT shape)."""

    def __init__(self):
        rng = np.random.default_rng(0)
        f, c, k = LAYER
        self.weight = (rng.standard_normal((f, c, k, k)) / np.sqrt(c * k * k)).astype(
            np.float32)
        self.bias = (0.1 * rng.standard_normal(f)).astype(np.float32)
        self.project = ((0.1 * rng.standard_normal((2, f))).astype(np.float32),
                        np.zeros(2, np.float32))
        self.x = rng.standard_normal((c, MAP[0] + k - 1, MAP[1] + k - 1)).astype(np.float32)
        self.spectra = {}

    def spectra_at(self, shape):
        from fastseg._inference import fftconv

        shape = tuple(shape)
        if shape not in self.spectra:
            self.spectra.clear()  # one shape's spectra at a time
            self.spectra[shape] = fftconv.KernelSpectra(self.weight, shape, backend="c")
        return self.spectra[shape]

    def run(self, shape=_SHAPE, x=None, **options):
        """CPU seconds of one thread computing the layer."""
        from fastseg import backends
        from fastseg._inference import fftconv

        spectra = self.spectra_at(shape)
        x = self.x if x is None else x
        before = backends.get_num_threads()
        backends.set_num_threads(1)
        try:
            t0 = time.thread_time()
            fftconv.correlate(x, spectra, self.bias, activations=["tanh"],
                              project=self.project, backend="c", **options)
            return time.thread_time() - t0
        finally:
            backends.set_num_threads(before)


_bench: list = [None]


def _the_bench() -> _Bench:
    if _bench[0] is None:
        _bench[0] = _Bench()
    return _bench[0]


def _measure_option(option: str):
    def measure(value):
        return _the_bench().run(**{option: value or None})

    return measure


def _measure_margin(margin):
    """One dense segmentation of a 96 x 96 image by lai2d (200 hidden units), `auto`."""
    import fastseg
    from fastseg import backends
    from fastseg._inference import cost

    net = _margin_net()
    image = np.random.default_rng(1).standard_normal((1, 96, 96)).astype(np.float32)
    before = backends.get_num_threads()
    backends.set_num_threads(1)
    try:
        with cost.overrides({"fft.margin": float(margin)}):
            fastseg.segment(net, image, method="auto", progress=False)  # spectra, plan
            t0 = time.thread_time()
            fastseg.segment(net, image, method="auto", progress=False)
            return time.thread_time() - t0
    finally:
        backends.set_num_threads(before)


_net: list = [None]


def _margin_net():
    if _net[0] is None:
        from fastseg import models

        rng = np.random.default_rng(2)
        net = models.lai2d(hidden=LAYER[0]).eval()
        for p in net.parameters():
            p.data[...] = (0.05 * rng.standard_normal(p.data.shape)).astype(np.float32)
        _net[0] = net
    return _net[0]


def tunables() -> list[tuple[str, list, object]]:
    """``(name, candidates, measure)`` for each FFT setting (:mod:`fastseg.tuning.tuner`
    times them); ``candidates[0]`` is the untuned default."""
    return [
        ("fft.mults", [3, 4], _measure_option("mults")),
        ("fft.chunk", [0, 64, 96], _measure_option("chunk")),
        ("fft.margin", [1.5, 1.0, 2.5], _measure_margin),
    ]
