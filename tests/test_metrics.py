import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from fastseg.metrics import cldice, evaluate, evaluate_dataset, format_table, roc_auc


def _random_case(seed, levels=None, shape=(37, 41)):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < rng.uniform(0.1, 0.5)
    prob = np.clip(0.35 * mask + rng.random(shape) * 0.65, 0, 1)
    if levels:
        prob = np.round(prob * levels) / levels  # many ties
    fov = rng.random(shape) < 0.8
    return prob, mask, fov


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [None, 4, 10])
def test_matches_sklearn_inside_fov(seed, levels):
    prob, mask, fov = _random_case(seed, levels)
    res = evaluate(prob, mask, fov, threshold=0.5)
    y, p = mask[fov], prob[fov]
    pred = p >= 0.5
    assert res["dice"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert res["iou"] == pytest.approx(skm.jaccard_score(y, pred), abs=1e-12)
    assert res["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert res["sensitivity"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    assert res["specificity"] == pytest.approx(skm.recall_score(~y, ~pred), abs=1e-12)
    assert res["precision"] == pytest.approx(skm.precision_score(y, pred), abs=1e-12)
    assert res["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    # The FOV matters: the whole-image AUC is a different number.
    assert evaluate(prob, mask)["auc"] == pytest.approx(skm.roc_auc_score(mask.ravel(),
                                                                          prob.ravel()))


def test_auc_ties_exact():
    # All scores tied: the ROC is the diagonal.
    assert roc_auc(np.full(10, 0.3), np.arange(10) % 2 == 0) == 0.5
    s = np.array([0.1, 0.4, 0.4, 0.4, 0.8, 0.8])
    y = np.array([0, 0, 1, 1, 0, 1], bool)
    assert roc_auc(s, y) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-15)


def test_threshold_is_inclusive():
    prob = np.array([0.5, 0.49, 0.7, 0.1])
    mask = np.array([1, 0, 1, 0])
    assert evaluate(prob, mask)["dice"] == 1.0
    assert evaluate(prob, mask, threshold=0.6)["sensitivity"] == 0.5


def test_degenerate_cases():
    prob = np.zeros((4, 4))
    mask = np.zeros((4, 4), bool)
    with pytest.warns(RuntimeWarning, match="auc"):
        res = evaluate(prob, mask)
    assert res["dice"] == 1.0 and res["iou"] == 1.0 and res["accuracy"] == 1.0
    assert math.isnan(res["auc"]) and math.isnan(res["sensitivity"])
    assert math.isnan(res["precision"]) and res["specificity"] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = evaluate(np.eye(4), np.eye(4, dtype=bool))
    assert full["dice"] == 1.0 and full["auc"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prob": np.array([[0.1, np.nan]])}, "prob.*NaN"),
        ({"prob": np.array([[0.1, 1.5]])}, r"prob.*\[0, 1\]"),
        ({"prob": np.array([[-0.1, 0.5]])}, r"prob.*\[0, 1\]"),
        ({"prob": np.zeros((0, 2)), "mask": np.zeros((0, 2), bool)}, "prob.*empty"),
        ({"mask": np.zeros((3, 2), bool)}, "mask.*shape"),
        ({"mask": np.array([[0, 2]])}, "mask.*binary"),
        ({"fov": np.zeros((1, 2), bool)}, "fov.*empty"),
        ({"fov": np.ones((2, 2), bool)}, "fov.*shape"),
        ({"threshold": 2.0}, "threshold"),
    ],
)
def test_bad_inputs(kwargs, match):
    args = {"prob": np.array([[0.2, 0.8]]), "mask": np.array([[0, 1]], bool)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        evaluate(**args)


def test_cldice():
    from skimage.morphology import skeletonize

    t = np.zeros((40, 40), bool)
    t[18:22, 2:38] = True
    t[2:38, 8:11] = True
    assert cldice(t, t) == 1.0
    broken = t.copy()
    broken[:, 20:23] = False  # a gap breaks the topology
    v = cldice(broken, t)
    # Reference computed by hand from the definition.
    sp, st = skeletonize(broken), skeletonize(t)
    tprec = (sp & t).sum() / sp.sum()
    tsens = (st & broken).sum() / st.sum()
    assert v == pytest.approx(2 * tprec * tsens / (tprec + tsens))
    assert 0 < v < 1
    assert cldice(np.zeros_like(t), np.zeros_like(t)) == 1.0
    assert cldice(np.zeros_like(t), t) == 0.0
    fov = np.zeros_like(t)
    fov[:, :20] = True
    assert cldice(broken, t, fov) == 1.0  # the gap is outside the FOV
    with pytest.raises(ValueError, match="true_mask"):
        cldice(t, t[:10])


def test_evaluate_dataset_and_table():
    cases = [_random_case(s, 8) for s in range(3)]
    probs, masks, fovs = zip(*cases, strict=True)
    rows, mean = evaluate_dataset(probs, masks, fovs, names=["a", "b", "c"])
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["auc"] == evaluate(probs[1], masks[1], fovs[1])["auc"]
    assert mean["name"] == "mean"
    assert mean["dice"] == pytest.approx(np.mean([r["dice"] for r in rows]))
    text = format_table(rows, mean)
    lines = text.splitlines()
    assert lines[0].split() == ["name", "dice", "iou", "accuracy", "sensitivity", "specificity",
                                "precision", "auc"]
    assert lines[-1].startswith("mean") and f"{mean['auc']:.4f}" in lines[-1]
    with pytest.raises(ValueError, match="masks"):
        evaluate_dataset(probs, masks[:2])
    with pytest.raises(ValueError, match=r"image 0 \(0\).*prob"):
        evaluate_dataset([np.full((2, 2), 2.0)], [np.zeros((2, 2), bool)])
    with pytest.raises(ValueError, match="probs"):
        evaluate_dataset([], [])


def test_dataset_mean_ignores_nan():
    good = (np.array([0.9, 0.1]), np.array([1, 0]))
    empty = (np.array([0.1, 0.1]), np.array([0, 0]))
    with pytest.warns(RuntimeWarning):
        rows, mean = evaluate_dataset([good[0], empty[0]], [good[1], empty[1]])
    assert math.isnan(rows[1]["auc"]) and mean["auc"] == 1.0
    assert "nan" in format_table(rows, mean)
