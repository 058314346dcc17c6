"""Segmenter on scans as users bring them: any axis order and voxel size (conformed to the
model's grid and mapped back), the whole brain in, left and right out, volumes in mm³."""
import itertools

import numpy as np
import pytest
from _brains import STRUCTURES, synthetic_brain

from fastseg import Segmenter
from fastseg.metrics import dice
from fastseg.postprocess import side_volumes

nib = pytest.importorskip("nibabel")


@pytest.fixture(scope="module")
def brain():
    return synthetic_brain()


@pytest.fixture(scope="module")
def seg(brain):
    image, labels, affine = brain
    model = Segmenter(model="lai3d", patch_size=8, epochs=3, batches_per_epoch=30,
                      batch_size=32, optimizer="adam", lr=3e-3, whole_brain=True,
                      augment=False, seed=0,
                      model_kwargs={"conv_channels": (3, 4), "kernel_size": 3, "hidden": 16})
    return model.fit([image], [labels > 0], affines=[affine], progress=False)


@pytest.fixture(scope="module")
def reference(seg, brain):
    image, labels, affine = brain
    found = seg.predict_labels(image, affine=affine)
    for k in (1, 2):  # the fixture is only useful if the model finds both sides
        assert dice(found == k, labels == k) > 0.6, k
    return found


def orientations():
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            yield np.array([[p, f] for p, f in zip(perm, flips, strict=True)], float)


def reoriented(array, affine, ornt):
    """`array` stored in another axis order and direction, same world positions."""
    out = nib.orientations.apply_orientation(array, ornt)
    return np.ascontiguousarray(out), affine @ nib.orientations.inv_ornt_aff(ornt, array.shape)


def to_ras(array, affine):
    return nib.orientations.apply_orientation(array, nib.orientations.io_orientation(affine))


def test_all_48_axis_orders_give_the_same_labels(seg, brain, reference):
    image, _, affine = brain
    seen = set()
    for ornt in orientations():
        scan, scan_affine = reoriented(image, affine, ornt)
        seen.add(nib.orientations.aff2axcodes(scan_affine))
        labels = seg.predict_labels(scan, affine=scan_affine)
        assert labels.shape == scan.shape and labels.dtype == np.uint8
        np.testing.assert_array_equal(to_ras(labels, scan_affine), reference)
    assert len(seen) == 48


def _nearest_on(labels, affine, shape, target_affine):
    """A label map resampled (nearest) onto another grid of the same world."""
    from scipy import ndimage

    to_source = np.linalg.inv(affine) @ target_affine
    return ndimage.affine_transform(labels, to_source[:3, :3], offset=to_source[:3, 3],
                                    output_shape=shape, order=0, mode="constant")


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 0.8), (1.3, 1.3, 1.3), (1.0, 1.0, 1.5)])
def test_other_voxel_sizes_segment_as_well_as_1mm(seg, brain, reference, spacing):
    """The same brain sampled at another voxel size: Dice against its own truth no more
    than 0.03 below the 1 mm scan's, per side; and its labels, on the 1 mm grid, close
    to the 1 mm labels."""
    _, truth, affine = brain
    image, scan_truth, scan_affine = synthetic_brain(spacing=spacing)
    labels = seg.predict_labels(image, affine=scan_affine)
    assert labels.shape == image.shape
    back = _nearest_on(labels, scan_affine, reference.shape, affine)
    for k in (1, 2):
        at_1mm, here = dice(reference == k, truth == k), dice(labels == k, scan_truth == k)
        assert here >= at_1mm - 0.03, (spacing, k, here, at_1mm)
        assert dice(back == k, reference == k) >= 0.85, (spacing, k)


def test_the_map_comes_back_onto_the_scan_grid_at_the_same_world_positions(seg, brain):
    """An oblique, anisotropic scan in another axis order: labels on its own grid, and the
    voxel at each structure's centre (in world mm) carries that structure's label."""
    image, _, scan_affine = synthetic_brain(spacing=(1.0, 1.2, 0.9))
    theta = np.radians(6)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    ornt = np.array([[2, -1], [0, 1], [1, -1]], float)
    scan, affine = reoriented(image, rotation @ scan_affine, ornt)
    labels = seg.predict_labels(scan, affine=affine)
    assert labels.shape == scan.shape
    for label, (centre, _) in STRUCTURES.items():
        world = rotation @ np.array([*centre, 1.0])
        voxel = np.round(np.linalg.inv(affine) @ world)[:3].astype(int)
        assert labels[tuple(voxel)] == label


def test_a_mirrored_brain_swaps_left_and_right(seg, brain, reference):
    image, _, affine = brain
    mirrored = seg.predict_labels(np.ascontiguousarray(image[::-1]), affine=affine)
    for k, other in ((1, 2), (2, 1)):
        xs = np.argwhere(mirrored == k)[:, 0]
        assert len(xs) and ((xs < image.shape[0] / 2) == (k == 1)).all()
        # The larger structure (left in the original) is now the right one.
        assert abs(int((mirrored == k).sum()) - int((reference == other).sum())) \
            <= 0.15 * (reference == other).sum()
    assert (reference == 1).sum() > (reference == 2).sum()


def test_volumes_are_voxel_counts_times_the_voxel_volume(seg):
    image, _, affine = synthetic_brain(spacing=(1.0, 1.0, 1.5))
    labels = seg.predict_labels(image, affine=affine)
    vols = side_volumes(labels, affine)
    assert vols["left"] == pytest.approx((labels == 1).sum() * 1.5)
    assert vols["right"] == pytest.approx((labels == 2).sum() * 1.5)
    assert vols["total"] == pytest.approx(vols["left"] + vols["right"]) and vols["left"] > 0


def test_bad_scans_are_named(seg, brain):
    image, _, affine = brain
    singular = affine.copy()
    singular[:, 0] = 0
    with pytest.raises(ValueError, match="affine"):
        seg.predict_labels(image, affine=singular)
    with pytest.raises(ValueError, match="affine"):
        seg.predict_labels(image, affine=np.full((4, 4), np.nan))
    tiny = np.diag([0.05, 0.05, 0.05, 1.0])
    with pytest.raises(ValueError, match="voxel size"):
        seg.predict_labels(image, affine=tiny)
    with pytest.raises(ValueError, match="no brain"):
        seg.predict_labels(np.zeros_like(image), affine=affine)
    with pytest.raises(ValueError, match="4-D|volumes"):
        seg.predict_labels(np.stack([image, image], -1), affine=affine)
    four = seg.predict_labels(image[..., None], affine=affine)  # a trailing axis of 1: fine
    assert four.shape == image.shape
    with pytest.raises(ValueError, match="photos"):
        Segmenter(model="lai2d").fit([np.zeros((30, 30))], [np.zeros((30, 30))],
                                     affines=[affine])
