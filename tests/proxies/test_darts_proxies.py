"""Every zero-shot proxy on DARTS networks (a subclassed Keras model with an auxiliary head)."""

from __future__ import annotations

import numpy as np
import pytest

from tfnas.proxies.base import clone_model_for_scoring, get_proxy, main_output, random_batch
from tfnas.spaces.darts import DartsSpace

# Every proxy that is defined for any network (incorporated_* need the Zen space's analytic entropy).
NAMES = ("zen", "synflow", "grad_norm", "snip", "naswot", "te_nas", "jacob_cov", "flops", "params", "random")


@pytest.fixture(scope="module")
def space() -> DartsSpace:
    return DartsSpace(channels=4, layers=3)  # auxiliary head on by default, as in training


@pytest.mark.parametrize("name", NAMES)
def test_every_proxy_scores_a_darts_cell(space, name):
    arch = space.decode("darts_v2")
    score = get_proxy(name).score_arch(space, arch, num_classes=10, input_shape=(8, 8, 3), batch_size=4,
                                       rng=np.random.default_rng(0))
    assert np.isfinite(score)


def test_proxies_score_a_model_with_an_auxiliary_head_as_its_inference_network(space):
    """Each proxy gives a model with an auxiliary head the score of the same network without it. The test
    checked only for finite scores (scoring the auxiliary logits passed it); NASWOT counted the auxiliary
    head's ReLUs, the params baseline its weights (413,748 against 2,858) and Zen drew its kernels."""
    arch = space.decode("darts_v2")
    model = space.build(arch, num_classes=10, input_shape=(32, 32, 3), auxiliary=True, seed=0)
    plain = space.build(arch, num_classes=10, input_shape=(32, 32, 3), auxiliary=False, seed=1)
    shared = {w.path: w for w in model.weights}
    for w in plain.weights:  # the same weights, without the auxiliary head's
        w.assign(shared[w.path].numpy())
    batch = random_batch(np.random.default_rng(1), 4, (32, 32, 3), 10)
    assert isinstance(model(batch.images, training=True), tuple)  # (logits, aux_logits) in training mode
    before = [w.copy() for w in model.get_weights()]
    for name in sorted(set(NAMES) - {"random"}):
        with_head, without = (get_proxy(name).score(m, batch, np.random.default_rng(2)) for m in (model, plain))
        assert np.isfinite(with_head) and with_head == pytest.approx(without, rel=1e-6), name
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_scoring_copy_of_a_subclassed_model(space):
    model = space.build(space.decode("darts_v2"), num_classes=10, input_shape=(8, 8, 3), auxiliary=False, seed=0)
    images = np.random.default_rng(3).standard_normal((2, 8, 8, 3)).astype(np.float32)
    copy = clone_model_for_scoring(model)
    assert copy is not model
    np.testing.assert_allclose(copy(images, training=False), model(images, training=False), rtol=1e-5, atol=1e-6)
    wide = clone_model_for_scoring(model, "float64")
    assert all(w.dtype == "float64" for w in wide.weights)
    np.testing.assert_allclose(wide(images.astype(np.float64), training=False), model(images, training=False),
                               rtol=1e-4, atol=1e-5)
    assert main_output((1, 2)) == 1 and main_output(3) == 3
    with pytest.raises(ValueError, match="empty"):
        main_output(())


def test_zen_reads_the_features_through_the_darts_hook(space):
    """DartsNetwork.pre_pool_features is what its global pooling averages, so Zen needs no patching."""
    model = space.build(space.decode("darts_v2"), num_classes=10, input_shape=(8, 8, 3), auxiliary=False, seed=0)
    images = np.random.default_rng(4).standard_normal((2, 8, 8, 3)).astype(np.float32)
    features = model.pre_pool_features(images, training=False)
    assert features.shape[0] == 2 and len(features.shape) == 4
    np.testing.assert_allclose(model.classifier(model.global_pool(features)), model(images, training=False),
                               rtol=1e-5, atol=1e-6)
    batch = random_batch(np.random.default_rng(1), 4, (8, 8, 3), 10)
    first = get_proxy("zen").score(model, batch, np.random.default_rng(2))
    assert np.isfinite(first) and first == get_proxy("zen").score(model, batch, np.random.default_rng(2))
