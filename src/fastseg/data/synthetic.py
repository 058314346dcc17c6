"""The built-in synthetic fundus data set: DRIVE-like retinal images without a download.

The generator's model is described in :func:`synthetic_fundus`. Everything here is
plain NumPy (plus Pillow for smooth up-sampling of noise), so it runs anywhere the
package installs.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fastseg import _validate
from fastseg.errors import InvalidValueError

from .record import Sample

__all__ = ["synthetic_fundus"]

_SPLITS = {"training": 0, "train": 0, "test": 1}


def synthetic_fundus(n, shape=(584, 565), seed=0, split="training"):
    """Generate ``n`` synthetic colour fundus images with vessel masks and FOV masks.

    Parameters
    ----------
    n : int
        Number of images (``>= 0``).
    shape : tuple of int, optional
        ``(H, W)`` of every image, at least 64 each. The default is DRIVE's 584 x 565.
    seed : int, optional
        Non-negative seed of the data set. The same ``(seed, split)`` always gives the
        same images, and image ``i`` does not depend on ``n`` (``synthetic_fundus(5)``
        is the first five of ``synthetic_fundus(20)``).
    split : {"training", "test"}, optional
        Which half of the data set; ``"train"`` is accepted for ``"training"``. The
        two splits are drawn from independent random streams (per-image seeds
        ``SeedSequence([seed, split_id, i])``), so
        ``synthetic_fundus(20, split="training")`` and
        ``synthetic_fundus(20, split="test")`` are a ready-made train/test split with
        no eye in both, as with DRIVE's 20 + 20 images.

    Returns
    -------
    list of Sample
        ``.image`` (H, W, 3) uint8 RGB, ``.mask`` (H, W) bool vessels, ``.fov`` (H, W)
        bool field of view, ``.name`` such as ``"synthetic0_training_03"``, ``.mask2``
        None.

    Notes
    -----
    The model of one eye, in the order it is built:

    1. **Geometry.** A circular field of view of radius about 0.47 min(H, W) (DRIVE's
       FOV), an optic disc of radius 0.12-0.15 R placed 0.5-0.62 R nasally (left or
       right eye at random), and a fovea slightly temporal of the centre, about 2.5
       disc diameters from the disc.
    2. **Vessel trees.** About a dozen roots leave the disc: an artery and a vein for
       each of the four arcades plus a few small macular and nasal vessels. Each
       branch is a random walk of short steps whose heading follows a flow field (the
       temporal arcades circle the fovea, the others run away from the disc and the
       macula) plus a smooth random turning rate that grows as the vessel thins
       (tortuosity). Branches taper, bifurcate at random with Murray's law
       (``w_parent^3 = w_child1^3 + w_child2^3``) at 30-70 degrees, and stop when
       they leave the FOV, thin below 1 px, reach their length budget or enter the
       foveal avascular zone. Root widths are 4.6-7.8 px; the thinnest vessels are 1 px.
    3. **Rasterisation.** Every step is a capsule (segment with linearly varying
       radius). Distances from the pixels of its bounding window to the segment give
       the mask (distance <= radius) and an absorbance profile (chord length of a
       cylinder, with a central light reflex on wide arteries), all segments at once
       with NumPy. Thin side-trees are pruned at random until the vessel fraction of
       the FOV equals a target drawn in 9.5-12.5 % (DRIVE: about 12 %).
    4. **Rendering.** Orange-red background reflectance with choroidal texture
       (band-limited noise, strongest in red), a bright optic disc with a brighter
       cup, a darker macula, vessels that absorb mostly green (contrast fades as
       ``1 - exp(-w / 2.2)``, so 1 px vessels keep about a third of the contrast of
       wide ones), distractors that are not vessels (bright yellow exudate clusters,
       dark round and flame-shaped haemorrhages, microaneurysm dots), then uneven
       illumination (vignetting towards the FOV edge, a tilt and a smooth field),
       Gaussian blur (sigma 0.6-1.1 px), sensor noise, and black outside the FOV.

    Forty images at 584 x 565 take a few seconds.

    Examples
    --------
    >>> from fastseg.data import synthetic_fundus
    >>> train = synthetic_fundus(20, seed=0)                 # doctest: +SKIP
    >>> test = synthetic_fundus(20, seed=0, split="test")    # doctest: +SKIP
    """
    n = _validate.as_int("n", n, minimum=0)
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise InvalidValueError(f"shape: expected a pair of ints (H, W), got {shape!r}")
    h, w = (_validate.as_int("shape", d, minimum=64) for d in shape)
    seed = _validate.as_int("seed", seed, minimum=0)
    if split not in _SPLITS:
        raise InvalidValueError(f"split must be 'training' or 'test', got {split!r}")
    split_id = _SPLITS[split]
    split_name = "training" if split_id == 0 else "test"
    samples = []
    for i in range(int(n)):
        # One stream per (seed, split, index): image i never depends on n.
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), split_id, i]))
        image, mask, fov = _generate_eye(rng, h, w)
        samples.append(Sample(image, mask, fov, name=f"synthetic{seed}_{split_name}_{i:02d}"))
    return samples


# --------------------------------------------------------------------------- geometry


@dataclass
class _Eye:
    h: int
    w: int
    cy: float
    cx: float
    radius: float  # FOV radius
    side: int  # +1: disc right of the fovea, -1: left
    disc_y: float
    disc_x: float
    disc_r: float
    fov_y: float  # fovea
    fov_x: float
    faz_r: float  # foveal avascular zone


def _draw_eye(rng, h, w) -> _Eye:
    m = min(h, w)
    radius = m * rng.uniform(0.462, 0.478)
    cy = h / 2 + rng.normal(0, 0.004 * m)
    cx = w / 2 + rng.normal(0, 0.004 * m)
    side = 1 if rng.random() < 0.5 else -1
    disc_y = cy + rng.normal(0, 0.05 * radius)
    disc_x = cx + side * rng.uniform(0.5, 0.62) * radius
    fov_y = cy + rng.normal(0, 0.04 * radius)
    fov_x = cx - side * rng.uniform(0.08, 0.18) * radius
    return _Eye(h, w, cy, cx, radius, side, disc_y, disc_x, rng.uniform(0.12, 0.15) * radius,
                fov_y, fov_x, rng.uniform(0.06, 0.09) * radius)


# --------------------------------------------------------------------------- vessel trees


@dataclass
class _Branch:
    y: float
    x: float
    heading: float  # radians, direction (sin a, cos a) in (row, col)
    width: float
    contrast: float
    reflex: float
    arc: int  # 0: flow mode; +-1: circles the fovea in that sense
    key: float  # pruning priority (small = kept first)
    budget: float  # remaining length in pixels


def _angle_to(a, b):
    """Signed smallest rotation from angle a to angle b."""
    return (b - a + math.pi) % (2 * math.pi) - math.pi


def _roots(rng, eye: _Eye):
    up, down = -math.pi / 2, math.pi / 2
    temporal = math.pi if eye.side == 1 else 0.0
    nasal = temporal + math.pi
    roots = []
    for vertical in (up, down):
        # Arcade (temporal) and nasal artery + vein pairs.
        tilt_t = _angle_to(vertical, temporal) * 0.22
        tilt_n = _angle_to(vertical, nasal) * 0.45
        for is_vein in (True, False):
            width = rng.uniform(6.0, 7.8) if is_vein else rng.uniform(4.6, 6.0)
            # Artery and vein of a pair leave at different angles so they do not overlap.
            jitter = rng.normal(0, 0.08) + (0.22 if is_vein else -0.22)
            roots.append((vertical + tilt_t + jitter, width, is_vein, True))
            roots.append((vertical + tilt_n + rng.normal(0, 0.15), width * rng.uniform(0.7, 0.9),
                          is_vein, False))
    for _ in range(rng.integers(2, 4)):  # small macular vessels
        roots.append((temporal + rng.normal(0, 0.35), rng.uniform(2.2, 3.4), rng.random() < 0.5,
                      False))
    for _ in range(rng.integers(1, 3)):  # small nasal vessels
        roots.append((nasal + rng.normal(0, 0.4), rng.uniform(2.5, 4.0), rng.random() < 0.5,
                      False))
    branches = []
    for heading, width, is_vein, arcade in roots:
        contrast = rng.uniform(0.40, 0.52) if is_vein else rng.uniform(0.28, 0.38)
        reflex = 0.0 if is_vein else rng.uniform(0.15, 0.35)
        # Start inside the disc, offset along the heading so the roots fan out.
        r0 = eye.disc_r * rng.uniform(0.25, 0.5)
        t0 = heading + rng.normal(0, 0.3)
        y, x = eye.disc_y + r0 * math.sin(t0), eye.disc_x + r0 * math.cos(t0)
        arc = 0
        if arcade:
            # Sense of rotation around the fovea that moves away from the disc.
            vy, vx = y - eye.fov_y, x - eye.fov_x
            arc = 1 if vx * math.sin(heading) - vy * math.cos(heading) > 0 else -1
        budget = eye.radius * (rng.uniform(1.5, 1.9) if arcade else rng.uniform(0.8, 1.2))
        branches.append(_Branch(y, x, heading, width, contrast, reflex, arc, 0.0, budget))
    return branches


def _flow(eye: _Eye, br: _Branch, y, x):
    """Preferred heading at (y, x) for a branch: the anatomy's 'flow field'."""
    fy, fx = y - eye.fov_y, x - eye.fov_x
    rho_f = math.hypot(fy, fx) + 1e-9
    if br.arc:
        # Circle the fovea at about half the FOV radius, pulled in or out radially.
        target = 0.5 * eye.radius
        ty, tx = br.arc * fx / rho_f, -br.arc * fy / rho_f
        pull = 1.5 * (target - rho_f) / target
        return math.atan2(ty + pull * fy / rho_f, tx + pull * fx / rho_f)
    dy, dx = y - eye.disc_y, x - eye.disc_x
    rho_d = math.hypot(dy, dx) + 1e-9
    # Away from the disc, and away from the macula when close to it.
    rep = 1.6 * math.exp(-((rho_f / (0.35 * eye.radius)) ** 2))
    py = dy / rho_d + rep * fy / rho_f + 0.8 * math.sin(br.heading)
    px = dx / rho_d + rep * fx / rho_f + 0.8 * math.cos(br.heading)
    return math.atan2(py, px)


def _grow(rng, eye: _Eye):
    """Grow all trees; returns segment arrays (y0, x0, y1, x1, r0, r1, c, reflex, key)."""
    segs = []
    heap = []
    counter = 0
    for br in _roots(rng, eye):
        heapq.heappush(heap, (-br.width, counter, br))
        counter += 1
    fov_r2 = (eye.radius - 2.0) ** 2
    faz_r2 = eye.faz_r**2
    while heap:
        _, _, br = heapq.heappop(heap)
        # Random numbers in bulk per branch: scalar rng calls dominate otherwise.
        max_steps = int(br.budget / 1.5) + 2
        noise = rng.standard_normal(max_steps)
        u = rng.random((max_steps, 3))
        omega = 0.0
        y, x, a, w = br.y, br.x, br.heading, br.width
        gain = 0.14 if br.arc else 0.09
        start_angle = math.atan2(y - eye.fov_y, x - eye.fov_x)
        for k in range(max_steps):
            if w < 0.9 or br.budget <= 0:
                break
            step = min(5.0, max(2.0, 0.5 * w + 1.5))
            sigma = 0.05 + 0.10 / max(w, 1.0)
            omega = 0.75 * omega + sigma * noise[k]
            a += omega + gain * _angle_to(a, _flow(eye, br, y, x))
            ny, nx = y + step * math.sin(a), x + step * math.cos(a)
            nw = w * math.exp(-0.0011 * step)
            if (ny - eye.cy) ** 2 + (nx - eye.cx) ** 2 > fov_r2:
                break
            if (ny - eye.fov_y) ** 2 + (nx - eye.fov_x) ** 2 < faz_r2:
                break
            segs.append((y, x, ny, nx, max(w, 1.0) / 2, max(nw, 1.0) / 2, br.contrast,
                         br.reflex, br.key))
            y, x, w = ny, nx, nw
            br.budget -= step
            if br.arc:
                swept = abs(_angle_to(start_angle, math.atan2(y - eye.fov_y, x - eye.fov_x)))
                if swept > 2.3:  # the arcade has passed the fovea: continue as a plain vessel
                    br.arc = 0
                    gain = 0.09
            # Bifurcation: on average one per (18 + 9 w) px of vessel, rarer on and
            # near the disc where real trunks run unbranched.
            near_disc = min(1.0, math.hypot(y - eye.disc_y, x - eye.disc_x) / (0.3 * eye.radius))
            if w > 1.3 and u[k, 0] < near_disc * step / (18.0 + 9.0 * w):
                wc = max(1.0, w * (0.3 + 0.45 * u[k, 1]))
                wc = min(wc, 0.85 * w)
                w = max(1.0, (w**3 - wc**3) ** (1 / 3))
                sense = 1 if u[k, 2] < 0.5 else -1
                turn = 0.55 + 0.65 * rng.random()
                key = br.key if wc >= 3.0 else max(br.key, rng.random())
                child = _Branch(y, x, a + sense * turn, wc, br.contrast, br.reflex, 0, key,
                                eye.radius * (0.15 + 0.13 * wc) * rng.uniform(0.7, 1.3))
                a -= sense * 0.12 * turn
                heapq.heappush(heap, (-wc, counter, child))
                counter += 1
    return np.array(segs, dtype=np.float64).reshape(-1, 9)


def _segment_pixels(segs, idx, size, h, w):
    """Pixels near segments ``idx`` (one window size): flat index, segment, distance, radius."""
    y0, x0, y1, x1, r0, r1 = (segs[idx, j][:, None, None] for j in range(6))
    rmax = np.maximum(r0, r1) + 1.0
    oy = np.floor(np.minimum(y0, y1) - rmax - 1)
    ox = np.floor(np.minimum(x0, x1) - rmax - 1)
    ar = np.arange(size, dtype=np.float64)
    yy = oy + ar[None, :, None]
    xx = ox + ar[None, None, :]
    py, px = yy - y0, xx - x0
    dy, dx = y1 - y0, x1 - x0
    t = np.minimum(np.maximum((py * dy + px * dx) / np.maximum(dy * dy + dx * dx, 1e-9), 0), 1)
    dist = np.hypot(py - t * dy, px - t * dx)
    rad = r0 + t * (r1 - r0)
    near = (dist < rad + 0.8) & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    flat = (yy * w + xx).astype(np.int64)
    seg = np.broadcast_to(idx[:, None, None], near.shape)
    return flat[near], seg[near], dist[near], rad[near]


def _rasterise(segs, eye: _Eye, target_pixels):
    """Mask (H*W bool) and absorbance (H*W float32) of the kept segments."""
    h, w = eye.h, eye.w
    n = len(segs)
    mask = np.zeros(h * w, dtype=bool)
    absorb = np.zeros(h * w, dtype=np.float64)
    if n == 0:
        return mask, absorb.astype(np.float32)
    # Window side each segment needs; bucket sizes so thin segments use small windows.
    need = (np.maximum(abs(segs[:, 2] - segs[:, 0]), abs(segs[:, 3] - segs[:, 1]))
            + 2 * np.maximum(segs[:, 4], segs[:, 5]) + 5)
    parts = []
    lo = 0.0
    for size in (8, 11, 15, 20, int(math.ceil(need.max())) + 1):
        idx = np.flatnonzero((need > lo) & (need <= size))
        lo = max(lo, size)
        if idx.size:
            parts.append(_segment_pixels(segs, idx, size, h, w))
    flat, seg, dist, rad = (np.concatenate(p) for p in zip(*parts, strict=True))

    # Rank: segments of trunks (key 0) first, then side-trees in random key order;
    # pruning keeps a prefix of this order, so it removes whole random twigs.
    order = np.lexsort((np.arange(n), segs[:, 8]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    seg_rank = rank[seg]
    inside = dist <= rad
    first = np.full(h * w, n, dtype=np.int64)
    np.minimum.at(first, flat[inside], seg_rank[inside])
    new_per_rank = np.bincount(first[first < n], minlength=n)
    keep = min(int(np.searchsorted(np.cumsum(new_per_rank), target_pixels)), n - 1)
    mask = first <= keep

    # Absorbance: chord length through a cylinder, faded for thin vessels, with a
    # bright central reflex on wide arteries; soft fringe of 0.8 px for anti-aliasing.
    sel = seg_rank <= keep
    flat, seg, dist, rad = flat[sel], seg[sel], dist[sel], rad[sel]
    soft_r = rad + 0.8
    val = segs[seg, 6] * (1 - np.exp(-2 * rad / 2.2))
    val *= np.sqrt(np.clip(1 - (dist / soft_r) ** 2, 0, 1))
    wide = np.clip((2 * rad - 4.0) / 2.0, 0, 1) * segs[seg, 7]
    val *= 1 - wide * np.exp(-((dist / (0.22 * rad + 0.3)) ** 2))
    np.maximum.at(absorb, flat, val)
    return mask, absorb.astype(np.float32)


# --------------------------------------------------------------------------- rendering


def _smooth_noise(rng, h, w, scale):
    """Zero-mean unit-std noise correlated over about ``scale`` pixels (bicubic up-sampling)."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    up = np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC), dtype=np.float32)
    return (up - up.mean()) / (up.std() + 1e-6)


def _gaussian_blur(img, sigma):
    """Separable Gaussian blur of an (H, W, C) float array, reflect borders (NumPy only)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    out = img
    for axis in (0, 1):
        pad = [(0, 0)] * img.ndim
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="reflect")
        acc = np.zeros_like(img)
        n = img.shape[axis]
        for i, kv in enumerate(k):
            acc += kv * np.take(p, np.arange(i, i + n), axis=axis)
        out = acc
    return out


def _blob(refl, yy, xx, cy, cx, a, b, theta, strength, colour, bright):
    """Soft ellipse (semi-axes a, b) added (bright) or absorbed (dark) on its bounding box."""
    h, w = refl.shape[:2]
    r = int(math.ceil(max(a, b) + 3))
    y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
    x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
    if y0 >= y1 or x0 >= x1:
        return
    dy, dx = yy[y0:y1, None] - cy, xx[None, x0:x1] - cx
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    d = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    prof = (strength / (1 + np.exp(np.minimum((d - 1) * 6, 50))))[..., None]
    if bright:
        refl[y0:y1, x0:x1] += prof * colour
    else:
        refl[y0:y1, x0:x1] *= 1 - prof * colour


def _render(rng, eye: _Eye, absorb):
    h, w = eye.h, eye.w
    yy = np.arange(h, dtype=np.float32)
    xx = np.arange(w, dtype=np.float32)
    rho = np.hypot(yy[:, None] - eye.cy, xx[None, :] - eye.cx) / eye.radius

    base = np.array([rng.uniform(150, 205), rng.uniform(62, 95), rng.uniform(18, 42)],
                    dtype=np.float32)
    # Choroidal texture: band-limited noise, strongest in red where the choroid shows.
    tex = 0.045 * _smooth_noise(rng, h, w, 5.0) + 0.02 * _smooth_noise(rng, h, w, 2.0)
    refl = base * (1 + tex[..., None] * np.array([1.0, 0.6, 0.5], dtype=np.float32))

    # Optic disc: bright, slightly elliptical, with a brighter cup.
    dd = np.hypot((yy[:, None] - eye.disc_y) / rng.uniform(1.0, 1.15),
                  (xx[None, :] - eye.disc_x)) / eye.disc_r
    disc = 1 / (1 + np.exp(np.minimum((dd - 1) / 0.07, 50)))
    cup = np.exp(-((dd / rng.uniform(0.35, 0.55)) ** 2))
    glow = rng.uniform(0.8, 1.2)
    refl += glow * (disc[..., None] * np.array([60, 85, 45], dtype=np.float32)
                    + cup[..., None] * np.array([25, 45, 35], dtype=np.float32))

    # Macula: a darker, wide dip centred on the fovea.
    df = np.hypot(yy[:, None] - eye.fov_y, xx[None, :] - eye.fov_x) / eye.radius
    mac = rng.uniform(0.18, 0.35) * np.exp(-((df / rng.uniform(0.15, 0.25)) ** 2))
    refl *= 1 - mac[..., None] * np.array([0.5, 1.0, 0.8], dtype=np.float32)

    # Vessels absorb mostly green (haemoglobin), some blue, little red.
    vessel_gain = np.array([rng.uniform(0.2, 0.35), 1.0, rng.uniform(0.5, 0.7)], np.float32)
    refl *= 1 - absorb.reshape(h, w)[..., None] * vessel_gain * rng.uniform(0.85, 1.15)

    _distractors(rng, eye, refl, yy, xx)

    # Illumination: vignetting to the FOV edge, a tilt, and a smooth field.
    vig = 1 - rng.uniform(0.3, 0.55) * np.clip(rho, 0, 1.2) ** rng.uniform(2.0, 3.5)
    ang = rng.uniform(0, 2 * math.pi)
    tilt = 1 + rng.uniform(0.05, 0.2) * ((yy[:, None] - eye.cy) * math.sin(ang)
                                         + (xx[None, :] - eye.cx) * math.cos(ang)) / eye.radius
    field = 1 + 0.07 * _smooth_noise(rng, h, w, eye.radius / 2.5)
    img = refl * (vig * tilt * field)[..., None]

    img = _gaussian_blur(img, rng.uniform(0.6, 1.1))
    img += rng.normal(0, rng.uniform(1.5, 3.5), img.shape).astype(np.float32)
    edge = np.clip((1 - rho) * eye.radius / 1.5 + 0.5, 0, 1)
    img *= edge[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _distractors(rng, eye: _Eye, refl, yy, xx):
    """Lesions that are not vessels: exudates (bright), haemorrhages and microaneurysms (dark)."""

    def spot(min_r, max_r):
        # A position inside the FOV, avoiding the disc, biased towards the macula.
        for _ in range(20):
            t = rng.uniform(0, 2 * math.pi)
            d = eye.radius * max_r * math.sqrt(rng.uniform(min_r**2, 1))
            y, x = eye.fov_y + d * math.sin(t), eye.fov_x + d * math.cos(t)
            if (math.hypot(y - eye.cy, x - eye.cx) < eye.radius * 0.92
                    and math.hypot(y - eye.disc_y, x - eye.disc_x) > 1.5 * eye.disc_r):
                return y, x
        return eye.fov_y, eye.fov_x + eye.radius * 0.3

    yellow = np.array([45, 65, 8], dtype=np.float32)
    for _ in range(rng.integers(0, 4)):  # exudate clusters
        cy, cx = spot(0.15, 0.7)
        for _ in range(rng.integers(3, 16)):
            r = rng.uniform(1.0, 4.5)
            _blob(refl, yy, xx, cy + rng.normal(0, 14), cx + rng.normal(0, 14), r,
                  r * rng.uniform(0.6, 1.0), rng.uniform(0, math.pi), rng.uniform(0.5, 1.0),
                  yellow, True)
    dark = np.array([0.35, 0.85, 0.6], dtype=np.float32)
    for _ in range(rng.integers(0, 7)):  # haemorrhages: round blots and flame shapes
        cy, cx = spot(0.1, 0.9)
        if rng.random() < 0.5:
            r = rng.uniform(3, 10)
            a, b = r, r * rng.uniform(0.7, 1.0)
        else:
            a, b = rng.uniform(7, 18), rng.uniform(1.5, 3.5)
        _blob(refl, yy, xx, cy, cx, a, b, rng.uniform(0, math.pi), rng.uniform(0.3, 0.6),
              dark, False)
    for _ in range(rng.integers(0, 12)):  # microaneurysms
        cy, cx = spot(0.05, 0.8)
        r = rng.uniform(1.0, 2.2)
        _blob(refl, yy, xx, cy, cx, r, r, 0.0, rng.uniform(0.25, 0.5), dark, False)


def _generate_eye(rng, h, w):
    eye = _draw_eye(rng, h, w)
    segs = _grow(rng, eye)
    yy = np.arange(h)[:, None]
    xx = np.arange(w)[None, :]
    fov = (yy - eye.cy) ** 2 + (xx - eye.cx) ** 2 <= eye.radius**2
    target = rng.uniform(0.095, 0.125) * fov.sum()
    mask, absorb = _rasterise(segs, eye, target)
    image = _render(rng, eye, absorb)
    return image, mask.reshape(h, w) & fov, fov
