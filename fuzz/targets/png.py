"""Fuzz target: png images (``fastseg.data.read_image``, ``read_mask``)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _image  # noqa: E402

if __name__ == "__main__":
    _image.main(".png")
