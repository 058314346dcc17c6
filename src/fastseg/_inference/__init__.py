"""Exact dense inference: a patch classifier run over whole images and volumes.

This private package takes a network and arrays and returns arrays; it knows no
files, no segmenter settings, no command line (it imports none of ``segment``,
``segmenter``, ``io``, ``train``, ``_commands``, ``distributed``). Its modules:

* :mod:`.fcn`: the patch network as a fully convolutional plan (FC -> K x K
  convolution, then 1 x 1), run by shift-and-stitch under pooling;
* :mod:`.cost`: per convolution, direct or FFT, the FFT size and the tile;
* :mod:`.fftconv`: overlap-save FFT convolution;
* :mod:`.triplanar`: the tri-planar network's three towers, summed at the hidden layer;
* :mod:`.tiles`: a 2-D input's map tile by tile (and :class:`~.tiles.Handover`);
* :mod:`.volume`: which kind a network segments, and each kind's dense form;
* :mod:`.rescale`: a photo's field of view to the model's scale and back;
* :mod:`.progress_bar`: the one progress bar over tiles, slices and blocks;
* :mod:`.dispatch`: :func:`~.dispatch.segment_array`, the entry for every input.
"""
from fastseg._inference.dispatch import segment_array
from fastseg._inference.tiles import Handover

__all__ = ["segment_array", "Handover"]
