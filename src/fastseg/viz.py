"""Pictures: masks, probability maps, overlays, training curves and the training GIF.

Everything here works with Pillow alone; matplotlib (the optional ``viz`` extra)
only makes the curve plot nicer. Every file is written atomically: to a
temporary file in the same folder, then :func:`os.replace`, so an interrupted
run never leaves half a PNG under the real name.

Overlay colours (:func:`overlay_comparison`): **green** true positive (vessel in
truth and prediction), **red** false positive (predicted, not in the truth),
**blue** false negative (missed vessel). :func:`overlay_mask` paints one mask
in a single colour (green by default).
"""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageDraw

from fastseg import _validate
from fastseg._atomic import atomic_write
from fastseg._row_blocks import row_blocks
from fastseg.errors import InvalidValueError

__all__ = [
    "TP_COLOR", "FP_COLOR", "FN_COLOR", "to_rgb", "mask_image", "probability_image",
    "overlay_mask", "overlay_comparison", "save_image", "training_frames", "save_gif",
    "plot_curves", "plot_panels", "plane_pictures", "central_planes", "PLANE_NAMES",
    "hippocampus_pictures",
]

TP_COLOR = (0, 200, 0)
FP_COLOR = (230, 0, 0)
FN_COLOR = (30, 80, 255)


# ---- arrays to pictures ------------------------------------------------------------


def to_rgb(image) -> np.ndarray:
    """An (H, W, 3) uint8 picture of an image.

    uint8 (H, W) or (H, W, 3) images are used as they are; anything else (e.g. a
    float network input, (C, H, W) included) is stretched from its 1st to 99th
    percentile to 0..255 so it is visible.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
        arr = arr.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or arr.size == 0:
        raise InvalidValueError(f"image: expected (H, W), (H, W, 3) or (C, H, W), got shape "
                                f"{np.shape(image)}")
    if arr.dtype != np.uint8:
        a = np.nan_to_num(arr.astype(np.float32))
        lo, hi = np.percentile(a, [1, 99])
        a = (a - lo) / (hi - lo) if hi > lo else a - lo
        arr = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def mask_image(mask) -> np.ndarray:
    """A binary mask as an (H, W) uint8 picture: 255 for True, 0 for False."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InvalidValueError(f"mask: expected (H, W), got shape {m.shape}")
    return np.where(m.astype(bool), np.uint8(255), np.uint8(0))


def probability_image(prob) -> np.ndarray:
    """Probabilities in [0, 1] as an (H, W) uint8 picture (0 -> black, 1 -> white)."""
    p = np.asarray(prob)
    if p.ndim != 2:
        raise InvalidValueError(f"prob: expected (H, W), got shape {p.shape}")
    out = np.empty(p.shape, np.uint8)
    for rows in row_blocks(p.shape[0], 4 * p.shape[1]):  # no image-sized temporaries
        block = np.asarray(p[rows], dtype=np.float32)
        out[rows] = (np.clip(np.nan_to_num(block), 0, 1) * 255 + 0.5).astype(np.uint8)
    return out


def overlay_mask(image, mask, color=TP_COLOR, alpha=0.6) -> np.ndarray:
    """Paint `mask` over `image` in one colour; returns (H, W, 3) uint8."""
    rgb = to_rgb(image)
    m = _validate.as_mask(mask, rgb.shape[:2])
    paint = alpha * np.asarray(color, np.float32)
    out = np.empty_like(rgb)
    for rows in row_blocks(rgb.shape[0], 12 * rgb.shape[1]):  # no image-sized float copy
        block = rgb[rows].astype(np.float32)
        inside = m[rows]
        block[inside] = (1 - alpha) * block[inside] + paint
        out[rows] = (block + 0.5).astype(np.uint8)
    return out


def overlay_comparison(image, pred, truth, fov=None, alpha=0.6) -> np.ndarray:
    """Prediction against truth on the image: TP green, FP red, FN blue.

    Parameters
    ----------
    image : array_like
        (H, W), (H, W, 3) or (C, H, W); see :func:`to_rgb`.
    pred, truth : array_like of bool, (H, W)
    fov : array_like of bool, (H, W), optional
        Only pixels inside it are coloured.
    alpha : float
        Opacity of the colours.

    Returns
    -------
    numpy.ndarray, (H, W, 3) uint8
    """
    rgb = to_rgb(image)
    hw = rgb.shape[:2]
    p, t = _validate.as_mask(pred, hw, name="pred"), _validate.as_mask(truth, hw, name="truth")
    if fov is not None:
        f = _validate.as_mask(fov, hw, name="fov")
        p, t = p & f, t & f
    out = rgb.astype(np.float32)
    for sel, color in ((p & t, TP_COLOR), (p & ~t, FP_COLOR), (~p & t, FN_COLOR)):
        out[sel] = (1 - alpha) * out[sel] + alpha * np.asarray(color, np.float32)
    return (out + 0.5).astype(np.uint8)


# ---- volumes ---------------------------------------------------------------------------

#: The three planes :func:`central_planes` shows, normal to axes 2, 1 and 0 of an RAS+ volume.
PLANE_NAMES = ("axial", "coronal", "sagittal")


def _plane(arr, axis, index):
    """The plane of `arr` normal to `axis` at `index`, turned so that, for an RAS+ volume
    (axis 0 left-to-right, 1 posterior-to-anterior, 2 inferior-to-superior), anterior or
    superior is up."""
    return np.rot90(np.take(arr, index, axis=axis))


def _outline(mask2d: np.ndarray) -> np.ndarray:
    """The boundary pixels of a 2-D mask (inside, next to outside), so that what lies
    under a mask stays visible."""
    from scipy import ndimage

    return mask2d & ~ndimage.binary_erosion(mask2d, border_value=0)


def plane_pictures(volume, pred, truth=None, spacing=None, min_side=128, centre=None,
                   outline=False, origin=(0, 0, 0)) -> dict:
    """The volume's three central planes (or those through `centre`), each with a mask
    painted over it.

    Parameters
    ----------
    volume : array_like, (D, H, W)
        The scan (any real dtype; shown from its 1st to 99th percentile).
    pred : array_like of bool, (D, H, W)
        The mask: green alone, or with `truth` TP green, FP red, FN blue.
    truth : array_like of bool, (D, H, W), optional
    spacing : sequence of 3 float, optional
        Voxel size (mm): planes are drawn at their physical aspect ratio.
    min_side : int
        Each plane is enlarged (nearest neighbour) until its shorter side reaches this.
    centre : sequence of 3 int, optional
        The voxel the three planes pass through (default: the volume's centre).
    outline : bool
        Paint only the mask's boundary in each plane (the anatomy under it visible).
    origin : sequence of 3 int
        Where `volume` starts in the scan it was cut from: the captions give the planes'
        indices in that scan (``origin + index``).

    Returns
    -------
    dict
        ``{name: (H, W, 3) uint8}`` for the names of :data:`PLANE_NAMES`, each
        captioned with its name and slice index.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3 or vol.size == 0:
        raise InvalidValueError(f"volume: expected a (D, H, W) volume, got shape {vol.shape}")
    p = _validate.as_mask(pred, vol.shape, name="pred")
    t = None if truth is None else _validate.as_mask(truth, vol.shape, name="truth")
    sp = np.ones(3) if spacing is None else np.asarray(spacing, np.float64).reshape(3)
    grey = to_rgb(vol.reshape(vol.shape[0], -1)).reshape(*vol.shape, 3)  # one stretch for all
    pictures = {}
    if centre is not None:
        centre = [_validate.as_int("centre", c, 0, n - 1) for c, n in
                  zip(centre, vol.shape, strict=True)]
    for name, axis in zip(PLANE_NAMES, (2, 1, 0), strict=True):
        index = vol.shape[axis] // 2 if centre is None else centre[axis]
        image = _plane(grey, axis, index)
        mp = _plane(p, axis, index)
        tp = None if t is None else _plane(t, axis, index)
        if outline:
            mp = _outline(mp)
            tp = None if tp is None else _outline(tp)
        pic = overlay_mask(image, mp, alpha=1.0 if outline else 0.6) if t is None else \
            overlay_comparison(image, mp, tp)
        pictures[name] = _plane_tile(pic, sp, axis, min_side,
                                     f"{name} {index + int(origin[axis])}")
    return pictures


def _plane_tile(pic, spacing, axis, min_side, caption) -> np.ndarray:
    """A plane's picture (normal to `axis`) at its voxels' physical aspect, enlarged
    (nearest neighbour) until its shorter side reaches `min_side`, under `caption`."""
    ry, rx = [spacing[a] for a in range(3) if a != axis][::-1]  # rot90 swaps the axes
    height, width = pic.shape[0] * ry, pic.shape[1] * rx
    zoom = max(min_side / min(height, width), 1.0)
    size = (max(round(width * zoom), 1), max(round(height * zoom), 1))
    big = np.asarray(Image.fromarray(pic).resize(size, Image.NEAREST))
    return np.asarray(_captioned(big, caption, min_width=1))


def central_planes(volume, pred, truth=None, spacing=None, min_side=128, caption="",
                   centre=None, outline=False, origin=(0, 0, 0)):
    """:func:`plane_pictures` side by side in one (H, W, 3) uint8 picture, under
    `caption` when one is given."""
    tiles = list(plane_pictures(volume, pred, truth, spacing, min_side, centre,
                                outline, origin).values())
    return _side_by_side(tiles, caption)


# ---- files -----------------------------------------------------------------------------


def _format_of(path) -> str:
    ext = os.path.splitext(os.fspath(path))[1].lower()
    formats = {".png": "PNG", ".gif": "GIF", ".jpg": "JPEG", ".jpeg": "JPEG",
               ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
    if ext not in formats:
        raise InvalidValueError(f"path: cannot tell the image format of {os.fspath(path)!r}; "
                                f"use one of {sorted(formats)}")
    return formats[ext]


def save_image(path, picture) -> None:
    """Write an (H, W) or (H, W, 3) uint8 picture (PNG, GIF, JPEG, TIFF by extension)."""
    arr = np.asarray(picture)
    if arr.dtype == bool:
        arr = mask_image(arr)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise InvalidValueError(f"picture: expected (H, W) or (H, W, 3) uint8, got shape "
                                f"{arr.shape} dtype {arr.dtype}")
    fmt = _format_of(path)
    img = Image.fromarray(np.ascontiguousarray(arr))
    atomic_write(path, lambda f: img.save(f, format=fmt))


# ---- the training GIF ---------------------------------------------------------------------


def _captioned(picture: np.ndarray, caption: str, min_width: int = 160) -> Image.Image:
    """The picture (enlarged to at least `min_width` pixels) under a caption strip.

    The caption may hold two lines separated by a newline.
    """
    img = Image.fromarray(to_rgb(picture))
    if img.width < min_width:
        scale = -(-min_width // img.width)
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    strip = 14 * (caption.count("\n") + 1) + 4
    out = Image.new("RGB", (img.width, img.height + strip), (0, 0, 0))
    out.paste(img, (0, strip))
    ImageDraw.Draw(out).multiline_text((3, 2), caption, fill=(255, 255, 255), spacing=2)
    return out


def training_frames(image, truth, prob, fov=None, epoch=None, threshold=0.5) -> list:
    """The five frames the training GIF shows for one epoch.

    Original -> true mask -> predicted mask -> true overlay -> predicted overlay,
    as the DRIVE re-implementation's animation, each with a caption naming it
    (and the epoch).

    Returns
    -------
    list of PIL.Image.Image
    """
    pred = np.asarray(prob) >= threshold
    if fov is not None:
        pred = pred & np.asarray(fov, bool)
    tag = "" if epoch is None else f"epoch {epoch}\n"
    pictures = [
        (image, "original"),
        (mask_image(truth), "true mask"),
        (mask_image(pred), "predicted mask"),
        (overlay_mask(image, truth), "true overlay"),
        (overlay_comparison(image, pred, truth, fov), "predicted (TP/FP/FN)"),
    ]
    return [_captioned(p, tag + c) for p, c in pictures]


def save_gif(path, frames, duration_ms=600, loop=0) -> None:
    """Write frames (PIL images or uint8 arrays) as an animated GIF, atomically."""
    frames = [f if isinstance(f, Image.Image) else Image.fromarray(to_rgb(f)) for f in frames]
    if not frames:
        raise InvalidValueError("frames: need at least one frame")
    size = frames[0].size
    frames = [f.convert("RGB").resize(size) if f.size != size else f.convert("RGB")
              for f in frames]
    first, rest = frames[0], frames[1:]
    atomic_write(path, lambda f: first.save(f, format="GIF", save_all=True, append_images=rest,
                                            duration=duration_ms, loop=loop))


# ---- curves ---------------------------------------------------------------------------------


def _finite_series(series: dict) -> dict:
    out = {}
    for name, values in series.items():
        vals = [float(v) for v in values]
        if vals:
            out[str(name)] = vals
    if not out:
        raise InvalidValueError("series: nothing to plot")
    return out


def plot_curves(path, series, title="training", xlabel="epoch", use_matplotlib=None) -> None:
    """Plot named curves (e.g. ``{"loss": [...], "dice": [...]}``) to a PNG.

    With matplotlib installed each series gets its own panel; without it (or with
    ``use_matplotlib=False``) a simple chart is drawn with Pillow, each series
    scaled to its own range.
    """
    series = _finite_series(series)
    if _matplotlib_wanted(use_matplotlib):
        _plot_matplotlib(path, series, title, xlabel)
    else:
        _plot_pillow(path, series, title, xlabel)


def _matplotlib_wanted(use_matplotlib) -> bool:
    """Whether matplotlib draws: when asked (it must import then), or by default when present."""
    if use_matplotlib is not None and not use_matplotlib:
        return False
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if use_matplotlib:
            raise
        return False
    return True


def _plot_matplotlib(path, series, title, xlabel):
    # The object API (no pyplot) needs no GUI backend and keeps no global figure.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(series), 3.2))
    axes = fig.subplots(1, len(series), squeeze=False)
    for ax, (name, vals) in zip(axes[0], series.items(), strict=True):
        ax.plot(range(1, len(vals) + 1), vals, marker="o", markersize=3)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


_PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def _plot_pillow(path, series, title, xlabel):
    w, h, margin = 640, 360, 40
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([margin, margin, w - margin, h - margin], outline=(0, 0, 0))
    draw.text((margin, 10), title, fill=(0, 0, 0))
    draw.text((w // 2 - 20, h - margin + 12), xlabel, fill=(0, 0, 0))
    n = max(len(v) for v in series.values())
    for i, (name, vals) in enumerate(series.items()):
        color = _PALETTE[i % len(_PALETTE)]
        finite = [v for v in vals if math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        span = hi - lo or 1.0
        points = [(margin + (w - 2 * margin) * (j / max(n - 1, 1)),
                   h - margin - (h - 2 * margin) * ((v - lo) / span))
                  for j, v in enumerate(vals) if math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
        draw.text((w - margin - 170, margin + 6 + 14 * i),
                  f"{name} [{lo:.3g}, {hi:.3g}]", fill=color)
    atomic_write(path, lambda f: img.save(f, format="PNG"))


def plot_panels(path, panels, title="", use_matplotlib=None) -> None:
    """Several panels of named curves against their own x values, side by side, to a PNG.

    Parameters
    ----------
    panels : sequence of dict
        Each ``{"title": str, "series": {name: (xs, ys)}}`` plus optional ``"xlabel"``,
        ``"ylabel"``, ``"log": bool`` (log-scale y) and ``"ylim": (lo, hi)``.
        Non-finite or non-positive (on a log axis) values are left out of a curve.

    Without matplotlib (or with ``use_matplotlib=False``) the curves go through
    :func:`plot_curves`' Pillow chart, one line per panel and name, against their index.
    """
    panels = list(panels)
    if not panels or not any(p.get("series") for p in panels):
        raise InvalidValueError("panels: nothing to plot")
    if _matplotlib_wanted(use_matplotlib):
        _panels_matplotlib(path, panels, title)
        return
    flat = {f"{p.get('title', '')} {name}": [math.nan if y is None else y for y in ys]
            for p in panels for name, (_, ys) in p.get("series", {}).items()}
    _plot_pillow(path, _finite_series(flat), title, "")


def _panels_matplotlib(path, panels, title):
    from matplotlib.figure import Figure

    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.3 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        log = bool(panel.get("log"))
        for name, (xs, ys) in panel.get("series", {}).items():
            pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)
                   if y is not None and math.isfinite(float(y)) and (not log or float(y) > 0)]
            if pts:
                px, py = zip(*pts, strict=True)
                ax.plot(px, py, marker="o" if len(pts) < 30 else None, markersize=3,
                        label=str(name))
        if log:
            ax.set_yscale("log")
        if panel.get("ylim"):
            ax.set_ylim(*panel["ylim"])
        ax.set_title(panel.get("title", ""), fontsize=10)
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))


#: The outline colour of the other hippocampus in :func:`hippocampus_pictures`.
OTHER_SIDE_COLOR = (255, 165, 0)
#: Context (mm) around a hippocampus in :func:`hippocampus_pictures`: enough to see
#: where it lies (temporal horn, amygdala, brainstem) and small enough to see its outline.
HIPPOCAMPUS_CONTEXT_MM = 24.0


def hippocampus_pictures(scan, labels, affine, *, min_side=240) -> dict:
    """Three planes through each hippocampus of a scan, its outline painted.

    Parameters
    ----------
    scan : array_like (D, H, W)
        The scan in its own voxel order.
    labels : array_like (D, H, W) of int
        1 left, 2 right hippocampus (:meth:`fastseg.Segmenter.predict_labels`).
    affine : array_like (4, 4)
        The scan's voxel-to-world matrix: the pictures are shown in RAS+ order
        (anterior or superior up) at their physical aspect, whatever the scan's own
        axis order.

    Returns
    -------
    dict
        ``{"left": picture, "right": picture}``, each (H, W, 3) uint8: the axial,
        coronal and sagittal planes through the centre of that side's label, cut to a
        box of :data:`HIPPOCAMPUS_CONTEXT_MM` around it (the whole planes through the
        middle of the scan, captioned "not found", where it has none), the side's
        outline in green and the other side's in orange, so the anatomy under both
        stays visible.
    """
    from fastseg.data import as_ras
    from fastseg.data.volume import spacing_of

    lab_native = np.asarray(labels)
    if lab_native.shape != np.shape(scan):
        raise InvalidValueError(f"labels: expected shape {np.shape(scan)}, got "
                                f"{lab_native.shape}")
    vol, ras_affine = as_ras(scan, affine)
    lab, _ = as_ras(lab_native, affine)
    spacing = spacing_of(ras_affine)
    grey_all = to_rgb(vol.reshape(vol.shape[0], -1)).reshape(*vol.shape, 3)  # one stretch
    pictures = {}
    for side, label, other in (("left", 1, 2), ("right", 2, 1)):
        where = np.argwhere(lab == label)
        box = tuple(slice(None) for _ in range(3))
        if len(where):
            reach = np.ceil(HIPPOCAMPUS_CONTEXT_MM / np.asarray(spacing)).astype(int)
            lo = np.maximum(where.min(axis=0) - reach, 0)
            hi = np.minimum(where.max(axis=0) + 1 + reach, vol.shape)
            box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
            centre = np.round(where.mean(axis=0)).astype(int) - lo
        else:
            centre = [n // 2 for n in vol.shape]
        grey, labels_box = grey_all[box], lab[box]
        tiles = []
        for name, axis in zip(PLANE_NAMES, (2, 1, 0), strict=True):
            index = int(centre[axis])
            pic = overlay_mask(_plane(grey, axis, index),
                               _outline(_plane(labels_box == label, axis, index)), alpha=1.0)
            pic = overlay_mask(pic, _outline(_plane(labels_box == other, axis, index)),
                               color=OTHER_SIDE_COLOR, alpha=1.0)
            at = index + (box[axis].start or 0)  # the plane's index in the RAS+ scan
            tiles.append(_plane_tile(pic, spacing, axis, min_side, f"{name} {at}"))
        caption = f"{side} hippocampus" + ("" if len(where) else ": not found")
        pictures[side] = _side_by_side(tiles, caption)
    return pictures


def _side_by_side(tiles, caption="") -> np.ndarray:
    """Pictures in a row on black, under `caption` when one is given."""
    gap, strip = 4, 18 if caption else 0
    out = Image.new("RGB", (sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1),
                            max(t.shape[0] for t in tiles) + strip), (0, 0, 0))
    x = 0
    for tile in tiles:
        out.paste(Image.fromarray(tile), (x, strip))
        x += tile.shape[1] + gap
    if caption:
        ImageDraw.Draw(out).text((3, 3), caption, fill=(255, 255, 255))
    return np.asarray(out)
