"""The report's flags: what about a result deserves a look, each with its reason.

A row (a record read by :func:`fastseg.report.records.read_records`) is flagged for:

- ``empty``: an empty mask (or, in a label map, an empty side);
- ``border``: a mask touching the picture's or scan's border (a structure cut off, or a
  photo whose FOV was missed);
- ``components``: volumes only, more than one connected component per hippocampus side
  (vessels come in many pieces: photos are never flagged for it);
- ``outlier``: a vessel fraction (photos) or a volume in mm³ (volumes: total, left,
  right) far from the rest of the run: robust z-score ``0.6745 (x - median) / MAD`` over
  the run's done rows of that kind beyond :data:`Z_THRESHOLD`, when there are at least
  :data:`MIN_ROWS` of them;
- ``fov``: a photo's field of view estimated (no FOV file given);
- ``skipped``, ``failed``: the input was not segmented by this run, with its error.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Flag", "Z_THRESHOLD", "MIN_ROWS", "OUTLIER_NUMBERS", "robust_z", "flag_rows"]

#: Robust z-score beyond which a number is an outlier (Iglewicz and Hoaglin's 3.5).
Z_THRESHOLD = 3.5
#: Fewest done rows of a kind for the outlier flag.
MIN_ROWS = 5
#: The numbers each kind of row is compared on, with their names for the page.
OUTLIER_NUMBERS = {
    "image": {"vessel_fraction": "vessel fraction of the FOV"},
    "volume": {"volume_mm3": "volume", "left_mm3": "left volume", "right_mm3": "right volume"},
}


@dataclass(frozen=True)
class Flag:
    """One reason to look at a row: ``code`` (a short name) and ``reason`` (a sentence)."""

    code: str
    reason: str


def robust_z(values) -> np.ndarray:
    """Robust z-scores ``0.6745 (x - median) / MAD`` of `values` (Iglewicz and Hoaglin).

    Parameters
    ----------
    values : array_like of float
        One number per row.

    Returns
    -------
    numpy.ndarray of float64
        The scores, in the order of `values`. Where more than half the values are equal
        (MAD 0), the mean absolute deviation stands in (``(x - median) / (1.2533 *
        meanAD)``); where every value is equal, all scores are 0.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    med = np.median(x)
    dev = np.abs(x - med)
    mad = np.median(dev)
    if mad > 0:
        return 0.6745 * (x - med) / mad
    mean_ad = dev.mean()
    if mean_ad > 0:
        return (x - med) / (1.253314 * mean_ad)
    return np.zeros_like(x)


def _format_number(code: str, value: float) -> str:
    if code == "vessel_fraction":
        return f"{100 * value:.2f} %"
    return f"{value:,.0f} mm³"


def _outliers(rows, threshold, min_rows) -> dict:
    """``{row index: [Flag]}`` of the outlier flags."""
    found = {}
    for kind, numbers in OUTLIER_NUMBERS.items():
        for code, what in numbers.items():
            idx = [i for i, r in enumerate(rows) if r.get("status") == "done"
                   and r.get("kind") == kind and isinstance(r["numbers"].get(code), (int, float))
                   and not isinstance(r["numbers"].get(code), bool)]
            if len(idx) < min_rows:
                continue
            values = np.array([rows[i]["numbers"][code] for i in idx], dtype=np.float64)
            z = robust_z(values)
            median = float(np.median(values))
            for i, v, zi in zip(idx, values, z, strict=True):
                if abs(zi) > threshold:
                    found.setdefault(i, []).append(Flag("outlier", (
                        f"{what} {_format_number(code, v)} is far from the run's median "
                        f"{_format_number(code, median)} (robust z {zi:+.1f}, beyond "
                        f"±{threshold:g} over {len(idx)} inputs)")))
    return found


def _mask_flags(row) -> list:
    kind = row.get("kind")
    facts = row.get("facts") or {}
    border = "image" if kind == "image" else "volume"
    unit = "vessel pixel" if kind == "image" else "structure voxel"
    flags = []
    empty = facts.get("empty")
    if empty is None and isinstance(row["numbers"].get("foreground"), int):
        empty = row["numbers"]["foreground"] == 0
    labels = facts.get("labels") or {}
    if empty:
        flags.append(Flag("empty", f"the mask is empty: not one {unit}"))
    else:
        for name, lab in labels.items():
            if lab.get("empty"):
                flags.append(Flag("empty", f"no {name} hippocampus: label {lab.get('value')} "
                                  "is empty"))
    if labels:
        for name, lab in labels.items():
            if lab.get("touches_border"):
                flags.append(Flag("border", f"the {name} hippocampus touches the {border} "
                                  "border"))
    elif facts.get("touches_border"):
        flags.append(Flag("border", f"the mask touches the {border} border"))
    if kind == "volume":
        if labels:
            for name, lab in labels.items():
                if lab.get("components", 0) > 1:
                    flags.append(Flag("components", f"the {name} hippocampus is in "
                                      f"{lab['components']} pieces (1 expected)"))
        elif facts.get("components", 0) > 1:
            flags.append(Flag("components", f"the mask is in {facts['components']} pieces "
                              "(1 expected)"))
    if row.get("fov_estimated"):
        flags.append(Flag("fov", "field of view estimated from the photo (no FOV file given)"))
    return flags


def flag_rows(rows, *, z_threshold=Z_THRESHOLD, min_rows=MIN_ROWS) -> list:
    """The flags of each row, in the rows' order.

    Parameters
    ----------
    rows : list of dict
        Records as :func:`fastseg.report.records.read_records` returns them.
    z_threshold : float
        Robust z-score beyond which a number is an outlier.
    min_rows : int
        Fewest done rows of a kind for the outlier flag.

    Returns
    -------
    list of list of Flag
    """
    outliers = _outliers(rows, float(z_threshold), int(min_rows))
    out = []
    for i, row in enumerate(rows):
        status = row.get("status")
        if status == "failed":
            flags = [Flag("failed", row.get("error") or "no reason given")]
        elif status == "skipped":
            flags = [Flag("skipped", "not segmented: its outputs existed already (a resumed "
                          "run), with no record of the run that made them")]
        else:
            flags = _mask_flags(row) + outliers.get(i, [])
        out.append(flags)
    return out
