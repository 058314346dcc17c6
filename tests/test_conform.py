"""conform: any axis order and voxel size onto RAS+ at a chosen spacing, and back."""
import itertools

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from fastseg.data import Volume, check_labels_grid, conform, hippocampus_mri
from fastseg.errors import InvalidTypeError, InvalidValueError

ORIENTATIONS = [(perm, flips) for perm in itertools.permutations(range(3))
                for flips in itertools.product((False, True), repeat=3)]


def _orient(array, affine, perm, flips):
    """`array` written in another axis order, and the affine that keeps every voxel's
    world position: voxel j of the result is voxel T @ j of `array`."""
    out = np.transpose(array, perm)
    shape = out.shape
    for axis, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis=axis)
    p = np.zeros((4, 4))
    p[3, 3] = 1
    for k, axis in enumerate(perm):
        p[axis, k] = 1
    f = np.diag([-1.0 if flip else 1.0 for flip in flips] + [1.0])
    f[:3, 3] = [n - 1 if flip else 0 for n, flip in zip(shape, flips, strict=True)]
    return np.ascontiguousarray(out), affine @ p @ f


def _rotation(degrees, axis):
    a = np.radians(degrees)
    r = np.eye(4)
    i, j = [x for x in range(3) if x != axis]
    r[i, i], r[i, j], r[j, i], r[j, j] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
    return r


@pytest.fixture(scope="module")
def brain():
    """The ICBM template (RAS+), every second voxel: 2 mm, 97x115x97, real anatomy."""
    s = hippocampus_mri("test", region="brain")[0]
    affine = s.affine.copy()
    affine[:3, :3] *= 2
    return np.ascontiguousarray(s.image[::2, ::2, ::2]), affine


def test_orient_helper_keeps_world_positions(brain):
    image, affine = brain
    v = np.array([40, 17, 66])
    world = affine[:3, :3] @ v + affine[:3, 3]
    for perm, flips in ORIENTATIONS[::7]:
        b, b_affine = _orient(image, affine, perm, flips)
        j = np.rint(np.linalg.solve(b_affine[:3, :3], world - b_affine[:3, 3])).astype(int)
        assert b[tuple(j)] == image[tuple(v)]


def test_all_48_orientations_conform_to_one_array_and_affine(brain):
    image, affine = brain
    codes = set()
    for perm, flips in ORIENTATIONS:
        b, b_affine = _orient(image, affine, perm, flips)
        codes.add(nib.aff2axcodes(b_affine))
        c = conform(b, b_affine, spacing=2.0)
        assert not c.resampled and c.obliquity == 0
        np.testing.assert_array_equal(c.array, image)
        np.testing.assert_array_equal(c.affine, affine)
        assert c.array.dtype == np.float32 and c.array.flags.c_contiguous
        assert c.spacing == (2.0, 2.0, 2.0) and c.native_shape == b.shape
    assert len(codes) == 48


def test_to_native_is_the_exact_inverse_in_all_48_orientations(brain):
    image, affine = brain
    image = image[15:75, 20:90, 15:75]  # a block of the brain: the same work, faster
    rng = np.random.default_rng(0)
    prob = rng.random(image.shape, dtype=np.float32)
    labels = (rng.random(image.shape) * 3).astype(np.uint8)
    for perm, flips in ORIENTATIONS:
        b, b_affine = _orient(image, affine, perm, flips)
        c = conform(b, b_affine, spacing=2.0)
        np.testing.assert_array_equal(c.to_native(prob), _orient(prob, affine, perm, flips)[0])
        back = c.labels_to_native(labels)
        assert back.dtype == np.uint8 and back.flags.c_contiguous
        np.testing.assert_array_equal(back, _orient(labels, affine, perm, flips)[0])
        np.testing.assert_array_equal(c.to_native(c.array), b)


def test_resampled_and_oblique_scans_conform_alike_in_every_orientation(brain):
    image, affine = brain
    image = image[20:60, 30:80, 25:70]  # the middle of the brain: fast
    oblique = _rotation(12, 2) @ _rotation(-7, 0) @ affine
    for base, spacing in ((affine, 2.6), (oblique, 2.0)):
        ref = conform(image, base, spacing=spacing)
        assert ref.resampled == (spacing != 2.0)
        assert ref.obliquity == pytest.approx(0 if base is affine else 13.8, abs=0.1)
        for perm, flips in ORIENTATIONS[1::5]:
            b, b_affine = _orient(image, base, perm, flips)
            c = conform(b, b_affine, spacing=spacing)
            np.testing.assert_array_equal(c.array, ref.array)
            np.testing.assert_allclose(c.affine, ref.affine, rtol=0, atol=1e-9)


def _blob(shape, affine, centre, radii):
    """A smooth ellipsoid probability (logistic edge, 1 mm wide) at world `centre`."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    r = np.sqrt((((world - centre) / radii) ** 2).sum(-1)) * min(radii)
    return (1 / (1 + np.exp((r - min(radii)) / 1.0))).astype(np.float32)


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def _world_centroid(weights, affine):
    idx = np.argwhere(weights > 0.5)
    return affine[:3, :3] @ idx.mean(0) + affine[:3, 3]


@pytest.mark.parametrize("spacing", [0.8, 1.3, (1.0, 1.0, 1.5)])
def test_resampling_there_and_back_keeps_the_blob_and_world_positions(spacing):
    native_affine = np.array([[-1.0, 0, 0, 30.3], [0, 0, 1.0, -20.1], [0, -1.0, 0, 12.0],
                              [0, 0, 0, 1]])  # L, I, A: not RAS
    shape = (44, 40, 48)
    centre, radii = np.array([8.2, 3.7, -5.1]), np.array([9.0, 7.0, 11.0])
    prob = _blob(shape, native_affine, centre, radii)
    c = conform(prob, native_affine, spacing=spacing)
    assert c.resampled and nib.aff2axcodes(c.affine) == ("R", "A", "S")
    np.testing.assert_allclose(c.spacing, np.broadcast_to(spacing, 3), rtol=1e-12)
    # the field of view is kept: same extent in mm, same centre
    fov = [n * s for n, s in zip(shape, (1, 1, 1), strict=True)]
    assert np.all(np.abs(np.sort(np.array(c.shape) * c.spacing) - np.sort(fov))
                  <= np.array(c.spacing) / 2 + 1e-9)
    # a voxel's value is the scan's, interpolated at that voxel's world point
    to_native = np.linalg.inv(native_affine) @ c.affine
    v = np.array([[10, 12, 14], [20, 19, 25], [31, 22, 17]])
    points = v @ to_native[:3, :3].T + to_native[:3, 3]
    if max(np.broadcast_to(spacing, 3)) < 1.4:  # no anti-aliasing filter: plain trilinear
        want = ndimage.map_coordinates(prob, points.T, order=1)
        np.testing.assert_allclose(c.array[tuple(v.T)], want, rtol=0, atol=1e-6)
    # the blob sits at the same world point on both grids
    np.testing.assert_allclose(_world_centroid(c.array, c.affine),
                               _world_centroid(prob, native_affine), atol=0.1)
    # there and back: same grid, same mask from the interpolated probability
    back = c.to_native(c.array)
    assert back.shape == shape and back.dtype == np.float32
    assert _dice(back > 0.5, prob > 0.5) >= 0.97
    # and on the conformed grid the blob is the blob made there
    made = _blob(c.shape, c.affine, centre, radii)
    assert _dice(c.array > 0.5, made > 0.5) >= 0.97


def test_anisotropic_oblique_scan_to_1mm_and_back():
    native_affine = _rotation(20, 1) @ np.diag([1.0, 1.0, 1.2, 1.0])
    native_affine[:3, 3] = [-20.0, -25.0, -18.0]
    shape = (40, 50, 36)
    centre = native_affine[:3, :3] @ (np.array(shape) / 2) + native_affine[:3, 3]
    prob = _blob(shape, native_affine, centre, np.array([8.0, 10.0, 7.0]))
    c = conform(prob, native_affine)
    assert c.resampled and c.obliquity == pytest.approx(20, abs=1e-6)
    np.testing.assert_allclose(c.spacing, 1.0, rtol=1e-12)
    # the obliquity is kept in the affine: the conformed axes are the scan's own
    cosines = c.affine[:3, :3] / np.linalg.norm(c.affine[:3, :3], axis=0)
    native_cosines = native_affine[:3, :3] / np.linalg.norm(native_affine[:3, :3], axis=0)
    np.testing.assert_allclose(np.abs(cosines), np.abs(native_cosines), atol=1e-12)
    assert c.shape == (40, 50, 43)  # 36 x 1.2 mm = 43.2 mm -> 43 voxels
    np.testing.assert_allclose(_world_centroid(c.array, c.affine), centre, atol=0.1)
    back = c.to_native(c.array)
    assert back.shape == shape
    assert _dice(back > 0.5, prob > 0.5) >= 0.97


def test_deoblique_resamples_onto_world_axes_keeping_world_positions():
    native_affine = _rotation(15, 2) @ _rotation(10, 0)
    native_affine[:3, 3] = [-20.0, -24.0, -22.0]
    shape = (42, 48, 44)
    centre = native_affine[:3, :3] @ (np.array(shape) / 2) + native_affine[:3, 3]
    prob = _blob(shape, native_affine, centre, np.array([8.0, 10.0, 7.0]))
    kept = conform(prob, native_affine)
    assert not kept.resampled and kept.obliquity > 10
    c = conform(prob, native_affine, deoblique=True)
    assert c.resampled
    np.testing.assert_allclose(c.affine[:3, :3], np.eye(3), atol=1e-12)
    # the world-aligned grid holds the whole rotated field of view
    assert all(m > n for m, n in zip(c.shape, shape, strict=True))
    np.testing.assert_allclose(_world_centroid(c.array, c.affine), centre, atol=0.1)
    assert _dice(c.array > 0.5, _blob(c.shape, c.affine, centre,
                                      np.array([8.0, 10.0, 7.0])) > 0.5) >= 0.97
    back = c.to_native(c.array)
    assert back.shape == shape and _dice(back > 0.5, prob > 0.5) >= 0.97


def test_volume_and_nibabel_inputs_and_identity_round_trip(brain, tmp_path):
    image, affine = brain
    b, b_affine = _orient(image, affine, (2, 0, 1), (True, False, True))
    img = nib.Nifti1Image(b, b_affine)
    volume = Volume(b, b_affine, (2.0, 2.0, 2.0), img.header, "subject01")
    for source, kwargs in ((img, {}), (volume, {}), (b[..., None], {"affine": b_affine})):
        c = conform(source, spacing=2.0, **kwargs)
        np.testing.assert_array_equal(c.array, image)
        assert c.to_native(np.zeros(c.shape)).shape == b.shape
    assert conform(volume, spacing=2.0).name == "subject01"
    assert conform(volume, spacing=2.0, name="x").name == "x"
    assert conform(volume, spacing=2.0).header is img.header
    assert conform(b, b_affine, spacing=2.0).native_axcodes == ("I", "R", "P")
    # results never alias the caller's arrays, even where nothing moved
    c = conform(image, affine, spacing=2.0)
    assert not np.shares_memory(c.array, image)
    prob = np.zeros(c.shape, np.float32)
    assert not np.shares_memory(c.to_native(prob), prob)
    # a voxel size within 1e-3 of the target is left alone
    nudged = b_affine.copy()
    nudged[:3, :3] *= 1.0004
    c = conform(b, nudged, spacing=2.0)
    assert not c.resampled and c.shape == image.shape


def test_bad_input_is_named(brain):
    image, affine = brain
    small = image[:8, :8, :8]
    with pytest.raises(InvalidValueError, match="affine: is singular"):
        conform(small, np.diag([1.0, 1.0, 0.0, 1.0]))
    flat = np.eye(4)
    flat[:3, 2] = [1.0, 1.0, 0.0]
    flat[:3, 1] = [0.0, 0.0, 0.0]
    with pytest.raises(InvalidValueError, match="singular"):
        conform(small, flat)
    coplanar = np.eye(4)
    coplanar[:3, 2] = [1.0, 1.0, 0.0]
    with pytest.raises(InvalidValueError, match="affine: is singular"):
        conform(small, coplanar)
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(InvalidValueError, match="affine: holds NaN"):
        conform(small, bad)
    with pytest.raises(InvalidValueError, match=r"affine: expected a 4x4 .*, got shape \(3, 3\)"):
        conform(small, np.eye(3))
    with pytest.raises(InvalidValueError, match="affine: expected a 4x4 .*, got str"):
        conform(small, "eye")
    with pytest.raises(InvalidValueError, match="affine: expected a 4x4 .*, got list"):
        conform(small, [["a"] * 4] * 4)
    with pytest.raises(InvalidValueError, match=r"affine: voxel size .* outside \[0.1, 10"):
        conform(small, np.diag([0.05, 1, 1, 1]))
    with pytest.raises(InvalidValueError, match=r"affine: voxel size .* axis 2"):
        conform(small, np.diag([1, 1, 12.0, 1]))
    with pytest.raises(InvalidValueError, match=r"spacing: voxel size .* outside"):
        conform(small, np.eye(4), spacing=0.05)
    with pytest.raises(InvalidValueError, match=r"spacing: voxel size .* outside"):
        conform(small, np.eye(4), spacing=(1, 1, 11))
    with pytest.raises(InvalidValueError, match="spacing: expected a voxel size"):
        conform(small, np.eye(4), spacing=(1, 1))
    with pytest.raises(InvalidValueError, match="image: expected a 3-D scan.*several volumes"):
        conform(np.zeros((4, 4, 4, 2)), np.eye(4))
    with pytest.raises(InvalidValueError, match="image: expected a 3-D scan"):
        conform(np.zeros((4, 4)), np.eye(4))
    assert conform(np.ones((4, 4, 4, 1, 1)), np.eye(4)).shape == (4, 4, 4)
    nan = small.copy()
    nan[1, 2, 3] = np.nan
    with pytest.raises(InvalidValueError, match="image: 1 voxels are NaN or infinite"):
        conform(nan, np.eye(4))
    with pytest.raises(InvalidValueError, match="image: is empty"):
        conform(np.zeros((0, 4, 4)), np.eye(4))
    with pytest.raises(InvalidValueError, match=r"conformed grid would be 5000x5000x5000 = "
                                                r"125000000000 voxels"):
        conform(np.zeros((100, 100, 100), np.float32), np.diag([5.0, 5, 5, 1]), spacing=0.1)
    with pytest.raises(InvalidTypeError, match="image: expected real voxel values"):
        conform(small.astype(np.complex64), np.eye(4))
    with pytest.raises(InvalidTypeError, match="image: expected a Volume"):
        conform("scan.nii.gz")
    with pytest.raises(InvalidValueError, match="affine: an array needs"):
        conform(small)
    volume = Volume(small, np.eye(4), (1, 1, 1), None, "v")
    with pytest.raises(InvalidValueError, match="affine: give it only with an array"):
        conform(volume, np.eye(4))
    c = conform(small, np.eye(4))
    with pytest.raises(InvalidValueError, match=r"array: shape \(8, 8\) is not"):
        c.to_native(np.zeros((8, 8)))
    with pytest.raises(InvalidValueError, match="order: must be 0"):
        c.to_native(small, order=3)
    with pytest.raises(InvalidTypeError, match="labels: expected an integer"):
        c.labels_to_native(small)


def test_check_labels_grid():
    affine = np.array([[0.0, 0, -1.2, 10], [1.0, 0, 0, -5], [0, 1.0, 0, 3], [0, 0, 0, 1]])
    check_labels_grid(affine, (10, 12, 14), affine, (10, 12, 14), "l.nii.gz")
    check_labels_grid(affine, (10, 12, 14, 1), affine, (10, 12, 14), "l.nii.gz")
    nudged = affine.copy()
    nudged[0, 3] += 5e-5
    check_labels_grid(nudged, (10, 12, 14), affine, (10, 12, 14), "l.nii.gz")
    nudged[0, 3] += 1e-3
    with pytest.raises(InvalidValueError, match=r"l.nii.gz: its affine places the grid up to "
                                                r"0.00105 mm away"):
        check_labels_grid(nudged, (10, 12, 14), affine, (10, 12, 14), "l.nii.gz")
    # a tiny rotation shows at the far corners
    with pytest.raises(InvalidValueError, match="l.nii.gz: its affine places"):
        check_labels_grid(_rotation(0.01, 2) @ affine, (10, 12, 14), affine, (10, 12, 14),
                          "l.nii.gz")
    with pytest.raises(InvalidValueError, match=r"l.nii.gz: shape \(10, 12, 13\) differs"):
        check_labels_grid(affine, (10, 12, 13), affine, (10, 12, 14), "l.nii.gz")
    with pytest.raises(InvalidValueError, match="l.nii.gz: affine: is singular"):
        check_labels_grid(np.zeros((4, 4)), (10, 12, 14), affine, (10, 12, 14), "l.nii.gz")
