"""SLNAS REINFORCE controllers: valid lite archs, teacher forcing, one trace, the update, exact resume."""

import numpy as np
import pytest
import tensorflow as tf

from tfnas.methods.slnas import ConnectionHead, OpController, OpHead, Ranger, StageController


@pytest.fixture(scope="module")
def stage():
    """The lite-space controller (2 cell types x 5 nodes), narrow so that it builds fast."""
    return StageController(hidden=16, lr=0.05, optimizer="adam", seed=0)


@pytest.fixture(scope="module")
def samples(stage):
    return [stage.sample() for _ in range(25)]


def test_sampled_lite_archs_are_valid(stage, samples):
    for arch, info in samples:
        assert arch.shape == (2, 20) and arch.dtype == np.int32
        for cell in arch:
            nodes = cell.reshape(5, 4)  # (in_x, op_x, in_y, op_y) per node
            for n, (in_x, op_x, in_y, op_y) in enumerate(nodes):
                assert 0 <= in_x < n + 2 and 0 <= in_y < n + 2
                assert 0 <= op_x < 5 and 0 <= op_y < 5
        assert info["log_prob"] < 0 < info["entropy"]
    inputs_of_last_node = {int(a[k, 16]) for a, _ in samples for k in range(2)}
    assert len(inputs_of_last_node) >= 4  # the draws spread over the anchors
    assert len({a.tobytes() for a, _ in samples}) == len(samples)
    assert stage.traces()["sample"] == 1  # one trace for every draw


def test_log_prob_rescores_a_sampled_arch(stage, samples):
    for arch, info in samples[:3]:
        log_p, entropy = stage.log_prob(arch)
        assert float(log_p) == pytest.approx(info["log_prob"], rel=1e-5, abs=1e-5)
        assert float(entropy) == pytest.approx(info["entropy"], rel=1e-5)
    assert stage.traces()["score"] == 1


def test_uniform_policy_entropy_is_the_log_of_the_choices():
    """With zero weights every decision is uniform: H = sum of log(#choices) over all decisions."""
    ctl = OpController(hidden=8, seed=0)
    for v in ctl.variables:
        v.assign(np.zeros(v.shape, np.float32))
    _, info = ctl.sample()
    assert info["entropy"] == pytest.approx(6 * np.log(5), rel=1e-5)
    assert info["log_prob"] == pytest.approx(-6 * np.log(5), rel=1e-5)


def test_reinforce_raises_the_probability_of_a_rewarded_arch(stage, samples):
    good, bad = samples[0][0], samples[1][0]
    before = float(stage.log_prob(good)[0])
    stage.update(bad, 10.0)  # sets the baseline
    for _ in range(3):
        stats = stage.update(good, 90.0)
        assert stats["advantage"] > 0
    assert float(stage.log_prob(good)[0]) > before + 0.2
    assert stage.traces() == {"sample": 1, "score": 1, "update": 1}


@pytest.fixture(scope="module")
def op():
    """The op head alone on the NAS-Bench-201 graph, narrow, with the paper's Ranger."""
    return OpController(hidden=8, lr=0.01, optimizer="ranger", seed=3)


def test_baseline_moves_before_the_loss(op):
    op.reset(1)
    arch, _ = op.sample()
    assert op.baseline is None
    first = op.update(arch, 50.0)
    assert first["reward"] == pytest.approx(50.0 + 1e-4 * first["entropy"], rel=1e-6)
    assert first["baseline"] == pytest.approx(first["reward"], rel=1e-6) and first["advantage"] == 0.0
    second = op.update(arch, 60.0)  # entropy and log_prob: of the policy before this step
    reward = 60.0 + 1e-4 * second["entropy"]
    baseline = first["baseline"] - 0.05 * (first["baseline"] - reward)
    assert second["reward"] == pytest.approx(reward, rel=1e-6)
    assert second["baseline"] == pytest.approx(baseline, rel=1e-6)
    assert second["advantage"] == pytest.approx(reward - baseline, rel=1e-4)
    assert second["loss"] == pytest.approx(-second["log_prob"] * (reward - baseline), rel=1e-4)
    assert op.baseline == pytest.approx(baseline, rel=1e-6)


def _steps(ctl, n, reward=lambda a: float(a.sum())):
    out = []
    for _ in range(n):
        arch, _ = ctl.sample()
        stats = ctl.update(arch, reward(arch))
        out.append((arch.tolist(), round(stats["loss"], 4)))
    return out


def test_state_restore_and_reset_continue_the_same_stream(op, tmp_path):
    op.reset(5)
    _steps(op, 4)
    path = tmp_path / "controller.npz"
    np.savez(path, **op.get_state())
    expected = _steps(op, 8)  # crosses a Lookahead synchronisation (every 6 steps)
    other = OpController(hidden=8, lr=0.01, optimizer="ranger", seed=99)
    with np.load(path) as saved:
        other.set_state(dict(saved))
    assert _steps(other, 8) == expected
    other.reset(5)  # reset(seed) == a controller built with that seed (not only another reset to it)
    fresh = OpController(hidden=8, lr=0.01, optimizer="ranger", seed=5)
    assert _steps(other, 3) == _steps(fresh, 3)
    other.reset(6)
    op.reset(5)
    assert _steps(other, 3) != _steps(op, 3)  # another seed, another stream
    assert op.traces() == {"sample": 1, "score": 0, "update": 1}
    with pytest.raises(ValueError, match="expects"):
        StageController(num_nodes=1, num_cell_types=1, hidden=8).set_state(op.get_state())


def test_head_sizes_are_arguments():
    ctl = StageController(num_cell_types=1, num_nodes=2, num_ops=3, hidden=8, seed=0)
    arch, _ = ctl.sample()
    assert arch.shape == (1, 8) and arch[0, 1::2].max() < 3
    ops = OpController(sources=(0, 1, 1, 2), num_cell_types=2, num_ops=4, hidden=8, seed=0)
    arch, _ = ops.sample()
    assert arch.shape == (2, 4) and ops.op_log_probs().shape == (2, 4, 4)
    with pytest.raises(ValueError, match="inputs must be in"):
        ctl.check_arch(np.array([[0, 0, 0, 0, 3, 0, 0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        ops.update(np.zeros((1, 4), np.int32), 1.0)


def test_head_configs_round_trip():
    for head in (ConnectionHead(num_nodes=3, units=8, temperature=2.0), OpHead(num_sources=3, units=8)):
        clone = type(head).from_config(head.get_config())
        assert clone.get_config() == head.get_config()
    with pytest.raises(ValueError, match="Received: units=0"):
        OpHead(num_sources=3, units=0)


def _ranger_reference(theta, grads, lr, b1=0.95, b2=0.999, eps=1e-5, k=6, alpha=0.5):
    """RAdam + Lookahead written out in numpy (the update of Ranger's module docstring)."""
    m = v = 0.0
    slow, rho_inf = theta, 2 / (1 - b2) - 1
    for t, g in enumerate(grads, start=1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho > 5:
            r = np.sqrt((1 - b2**t) * (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            theta = theta - lr * r * m / (np.sqrt(v) + eps) / (1 - b1**t)
        else:
            theta = theta - lr * m / (1 - b1**t)
        if t % k == 0:
            slow = slow + alpha * (theta - slow)
            theta = slow
    return theta


def test_ranger_follows_radam_with_lookahead():
    grads = [0.5, -0.2, 0.3, 0.9, -0.4, 0.1, 0.7, 0.2]  # 8 steps: both RAdam regimes, one sync
    var = tf.Variable([1.0, -2.0])
    opt = Ranger(learning_rate=0.1)
    for g in grads:
        opt.apply_gradients([(tf.constant([g, 2 * g]), var)])
    expected = [_ranger_reference(1.0, grads, 0.1), _ranger_reference(-2.0, [2 * g for g in grads], 0.1)]
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-5)
    assert Ranger.from_config(opt.get_config()).lookahead_steps == 6


def test_updates_give_the_same_bits_on_every_run():
    """The unrolled policy reads its LSTM biases and attention weights at every step; their gradient
    contributions are summed pairwise, so the weights do not depend on the timing of the graph's
    parallel branches. A tape's single AddN changed their last bits in about half of the updates."""
    stage = StageController(hidden=64, lr=1e-3, optimizer="adam", seed=0)

    def run():
        stage.reset(3)
        for _ in range(40):
            arch, _ = stage.sample()
            stage.update(arch, accuracy=float((int(arch.sum()) * 7) % 23) + 50.0)
        return stage.get_state()

    first = run()
    for _ in range(3):
        again = run()
        assert [k for k in first if not np.array_equal(first[k], again[k])] == []


def test_the_update_runs_eagerly_for_debugging():
    """``tf.gradients`` has no eager mode: run eagerly, the update takes a tape's gradients, the same values."""
    graph = OpController(hidden=8, lr=0.01, optimizer="adam", seed=2)
    arch, _ = graph.sample()
    graph.update(arch, 40.0)
    expected = graph.update(arch, 70.0)
    tf.config.run_functions_eagerly(True)
    try:
        eager = OpController(hidden=8, lr=0.01, optimizer="adam", seed=2)
        eager.sample()
        eager.update(arch, 40.0)
        got = eager.update(arch, 70.0)
    finally:
        tf.config.run_functions_eagerly(False)
    assert got == pytest.approx(expected, rel=1e-5)
    for a, b in zip(graph.variables, eager.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
