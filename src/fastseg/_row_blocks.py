"""Row blocks: element-wise work on an image-sized array without image-sized temporaries.

An expression such as ``(x - mean) / std`` on a 4096x4096 plane makes one
temporary per operation, each as large as the plane (twice as large when NumPy
promotes to float64). Run block by block over rows, the same operations give the
same values (element-wise arithmetic does not depend on how the array is cut)
while the temporaries stay a few MiB.
"""
from __future__ import annotations

#: Bytes of one block of rows of the input (temporaries are a small multiple of it).
BLOCK_BYTES = 4 * 2**20


def row_blocks(n_rows: int, row_bytes: int, block_bytes: int | None = None):
    """Slices covering ``range(n_rows)`` in order, each of about `block_bytes` (default
    :data:`BLOCK_BYTES`; at least one row)."""
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    step = max(1, block_bytes // max(1, row_bytes))
    for r0 in range(0, n_rows, step):
        yield slice(r0, min(n_rows, r0 + step))
