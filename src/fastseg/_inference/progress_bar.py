"""The progress bar of one segmentation's tiles, slices or blocks (2-D and volumes)."""
from __future__ import annotations

import sys


def each(items, progress, unit: str):
    """Yield `items` in order under a ``segment`` bar counting `unit`: shown when
    `progress` is True, or when it is None and there are 16 items or more with stderr
    a terminal; closed however the loop ends."""
    items = list(items)
    if progress is None:
        progress = len(items) >= 16 and sys.stderr.isatty()
    if not progress:
        yield from items
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc="segment", unit=unit, leave=False)
    try:
        for item in items:
            yield item
            bar.update()
    finally:
        bar.close()
