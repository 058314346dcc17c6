"""fastseg._inference.triplanar: the tri-planar classifier as three dense towers summed at the
hidden layer: the split of the first Linear, the head, the patch size, the refusals."""
import numpy as np
import pytest

import fastseg
from fastseg import models, nn
from fastseg._inference import triplanar


def small_net(patch=8, **kw):
    fastseg.seed(3)
    return models.lai_triplanar(patch_size=patch, conv_channels=(2,), kernel_size=3, hidden=5,
                                **kw).eval()


def test_plan_splits_the_first_linear_into_one_column_block_per_tower():
    net = small_net()
    plan = triplanar.plan(net, 8)
    first = net[1]
    width = first.in_features // 3
    assert (plan.hidden, plan.num_classes, plan.patch_size) == (5, 2, 8)
    for a, tower in enumerate(plan.towers):
        block = tower.steps[-1].weight.reshape(5, -1)
        np.testing.assert_array_equal(block, first.weight.data[:, a * width:(a + 1) * width])
        assert tower.steps[-1].bias is None  # the bias is added once, after the sum
    np.testing.assert_array_equal(plan.bias, first.bias.data)
    assert [s[0] for s in plan.head] == ["act", "linear"]


def test_towers_summed_then_the_head_equal_the_classifier_on_one_patch():
    net = small_net()
    plan = triplanar.plan(net, 8)
    rng = np.random.default_rng(0)
    patches = [rng.standard_normal((1, 1, 8, 8)).astype(np.float32) for _ in range(3)]
    pre = sum(tower.run(p)[0] for tower, p in zip(plan.towers, patches, strict=True))
    got = plan.class1_probability(pre.reshape(5, 1, 1, 1))
    logits = net(patches)
    want = np.exp(logits[0, 1]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(got.ravel(), [want], atol=1e-5)


def test_patch_size_inferred_from_the_first_linear():
    net = small_net(patch=10)
    assert getattr(net, "patch_size", None) is None  # nothing recorded: inferred
    assert triplanar.infer_patch_size(net) == 10
    assert triplanar.is_triplanar(net) and not triplanar.is_triplanar(models.lai2d(hidden=4))


def test_refusals_name_the_caller_and_the_reason():
    with pytest.raises(ValueError, match="^Segmenter.fit: a tri-planar network has 3 towers"):
        triplanar.plan(small_net(planes=2), 8, caller="Segmenter.fit")
    with pytest.raises(ValueError, match="patch_size: 9 gives the tri-planar towers"):
        triplanar.plan(small_net(), 9)
    net = small_net()
    net[0].branches[1][0].padding = (1, 1)
    with pytest.raises(ValueError, match="padding > 0"):
        triplanar.plan(net, 8)
    with pytest.raises(ValueError, match="not a tri-planar network"):
        triplanar.plan(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 2)), 8)
