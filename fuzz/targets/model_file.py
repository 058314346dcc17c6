"""Fuzz target: model files (``fastseg.load``, ``Segmenter.load``: zip of JSON + .npy)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import Scratch, check, instrumented, run  # noqa: E402

with instrumented("zipfile", "json", "numpy.lib.format"):
    import fastseg.io
    from fastseg.segmenter import Segmenter

SCRATCH = Scratch("model.fseg")


def one_input(data: bytes) -> None:
    path = SCRATCH.write(data)
    check(fastseg.io.load, path)
    check(Segmenter.load, path)


if __name__ == "__main__":
    run(one_input)
