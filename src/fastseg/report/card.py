"""The run card ``DIR/fastseg-run.json``: which model made the results of a folder, and
how (network, patch size, threshold, the fastseg, ISA and backend that ran)."""
from __future__ import annotations

import datetime
import math
import os
from pathlib import Path

from fastseg.report._jsonfile import read_json, write_json

__all__ = ["RUN_CARD_NAME", "RUN_CARD_FORMAT", "RUN_CARD_VERSION", "run_card",
           "write_run_card", "read_run_card"]

#: The run card's file name in the output folder.
RUN_CARD_NAME = "fastseg-run.json"
RUN_CARD_FORMAT = "fastseg-run"
RUN_CARD_VERSION = 1
_MAX_BYTES = 1 << 20

#: Attributes of a Segmenter (then of its network) that may hold the voxel spacing of its
#: training scans, first found wins: the segmenter is being restructured, so every likely
#: name is tried and none is required.
_SPACING_ATTRIBUTES = ("training_spacing_", "spacing_", "voxel_spacing_", "target_spacing_")
_NET_SPACING_ATTRIBUTES = ("training_spacing", "spacing", "voxel_spacing")
_DATA_ATTRIBUTES = ("training_data_", "data_")
_NET_DATA_ATTRIBUTES = ("training_data",)


def _first(objects_and_names):
    for obj, names in objects_and_names:
        for name in names:
            value = getattr(obj, name, None) if obj is not None else None
            if value is not None:
                return value
    return None


def _number(value):
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON int like 10**400
        return None
    return value if math.isfinite(value) else None


def _spacing(value):
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        return None
    return values if values and all(math.isfinite(v) and v > 0 for v in values) else None


def _text(value):
    if value is None:
        return None
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict):  # e.g. {"source": "mri", "scans": 1}
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


#: A network's default kind where a segmenter's own resolution is not at hand (as
#: ``fastseg.Segmenter`` resolves ``kind=None``).
_DEFAULT_KINDS = {"lai_triplanar": "triplanar", "lai3d": "3d"}


def _kind(segmenter):
    """The resolved kind: the segmenter's own answer (``resolved_kind()``, formerly
    ``_kind()``), else its setting, else the network's default."""
    for method in ("resolved_kind", "_kind"):
        resolve = getattr(segmenter, method, None)
        if callable(resolve):
            try:
                return str(resolve())
            except Exception:  # a half-built or foreign segmenter: try the next way
                pass
    kind = getattr(segmenter, "kind", None)
    if kind is not None:
        return str(kind)
    model = getattr(segmenter, "model", None)
    if isinstance(model, str):
        return _DEFAULT_KINDS.get(model, "image")
    return None


def _threshold(segmenter):
    try:
        return _number(segmenter.decision_threshold())
    except Exception:  # "auto" not chosen yet, or a segmenter without the method
        return _number(getattr(segmenter, "threshold", None))


def run_card(segmenter, *, model_path, backend, isa, threshold=None) -> dict:
    """What the report shows about the model and the machine that made a folder's results.

    Every attribute is read defensively (missing ones are left out as None), so a
    segmenter of an older or newer layout still gives a card.

    Parameters
    ----------
    segmenter : fastseg.Segmenter
        The fitted segmenter that ran (``Segmenter.load(model_path)``).
    model_path : str or os.PathLike
        The model file, as the user named it (shown, not linked).
    backend : str
        The backend that ran (``fastseg.get_backend()``).
    isa : str
        The kernels' instruction set (``fastseg.info.collect()["isa"]``).
    threshold : float, optional
        The mask threshold the run applied when it was not the model's own
        (``fastseg segment --threshold``); default the segmenter's
        ``decision_threshold()``.

    Returns
    -------
    dict
        ``model_path``, ``model_name``, ``network``, ``kind``, ``patch_size``,
        ``channels``, ``training_data``, ``fov_diameter`` (photos, pixels),
        ``voxel_spacing`` (volumes, mm), ``threshold``, ``threshold_source``
        (``"model"`` or ``"run"``), ``keep_largest``, ``fastseg_version``, ``backend``,
        ``isa``, ``created`` (UTC, ISO 8601).
    """
    from fastseg import __version__

    net = getattr(segmenter, "model_", None)
    kind = _kind(segmenter)
    patch = getattr(segmenter, "patch_size", None)
    spacing = _spacing(_first([(segmenter, _SPACING_ATTRIBUTES), (net, _NET_SPACING_ATTRIBUTES)]))
    diameter = _number(_first([(segmenter, ("fov_diameter_",)), (net, ("fov_diameter",))]))
    model = getattr(segmenter, "model", None)
    path = os.fspath(model_path) if model_path is not None else None
    return {
        "model_path": path,
        "model_name": Path(path).name if path else None,
        "network": model if isinstance(model, str) else (type(model).__name__ if model
                                                         is not None else None),
        "kind": kind,
        "patch_size": int(patch) if isinstance(patch, int) and not isinstance(patch, bool)
        else None,
        "channels": _text(getattr(segmenter, "channels", None)) if kind == "image" else None,
        "training_data": _text(_first([(segmenter, _DATA_ATTRIBUTES),
                                       (net, _NET_DATA_ATTRIBUTES)])),
        "fov_diameter": diameter if kind == "image" else None,
        "voxel_spacing": spacing if kind != "image" else None,
        "threshold": _number(threshold) if threshold is not None else _threshold(segmenter),
        "threshold_source": "run" if threshold is not None else "model",
        "keep_largest": getattr(segmenter, "keep_largest", None) if kind != "image" else None,
        "fastseg_version": __version__,
        "backend": None if backend is None else str(backend),
        "isa": None if isa is None else str(isa),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_run_card(out_dir, card) -> Path:
    """Write the run card into the output folder, atomically.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output folder.
    card : dict
        What :func:`run_card` returned.

    Returns
    -------
    pathlib.Path
        ``out_dir/fastseg-run.json`` (one per folder: the last run's).
    """
    path = Path(out_dir) / RUN_CARD_NAME
    write_json(path, RUN_CARD_FORMAT, RUN_CARD_VERSION,
               {k: v for k, v in dict(card).items() if k not in ("format", "version")})
    return path


_CARD_FIELDS = {
    "model_path": str, "model_name": str, "network": str, "kind": str, "patch_size": int,
    "channels": str, "training_data": str, "fov_diameter": float, "voxel_spacing": list,
    "threshold": float, "threshold_source": str, "keep_largest": int,
    "fastseg_version": str, "backend": str, "isa": str, "created": str,
}


def read_run_card(out_dir) -> dict:
    """The run card of `out_dir`, its fields checked (a field of the wrong type is
    dropped: it is only shown).

    Raises
    ------
    fastseg.report._jsonfile.UnreadableFileError
        Missing, corrupt, foreign, too new or too large.
    """
    data = read_json(Path(out_dir) / RUN_CARD_NAME, RUN_CARD_FORMAT, RUN_CARD_VERSION,
                     _MAX_BYTES)
    card = {}
    for name, kind in _CARD_FIELDS.items():
        value = data.get(name)
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            card[name] = _number(value)
        elif kind is list:
            card[name] = _spacing(value) if isinstance(value, list) else None
        elif kind is int:
            card[name] = value if isinstance(value, int) and not isinstance(value, bool) \
                else None
        else:
            card[name] = value if isinstance(value, str) else None
    return card
