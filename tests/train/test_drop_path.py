"""Tests of the per-epoch drop-path rate of tfnas/train/drop_path.py and its [train] keys."""

import pytest

from tfnas.config import ConfigError, load_config
from tfnas.train.drop_path import drop_path_rate_for_epoch


def slnas_reference_rates(drop_prob, epochs):
    """The SLNAS retraining loop (retrainer_org.py / retrainer_AID.py), transcribed: the rate is
    updated only while ``epoch < epochs * 0.7`` and otherwise keeps its last value."""
    rates, rate = [], None
    for epoch in range(epochs):
        if int(epoch < epochs * 0.7):
            rate = drop_prob * (epoch * 0.7) / (epochs * 0.7)
        rates.append(rate)
    return rates


@pytest.mark.parametrize("epochs", [1, 3, 10, 13, 600])
def test_default_is_the_plain_linear_ramp(epochs):
    for epoch in range(epochs + 2):
        assert drop_path_rate_for_epoch(0.3, epoch, epochs) == 0.3 * epoch / epochs
        assert drop_path_rate_for_epoch(0.3, epoch, epochs, 1.0) == 0.3 * epoch / epochs


@pytest.mark.parametrize("drop_prob, epochs", [(0.35, 600), (0.5, 600), (0.35, 10), (0.5, 13), (0.35, 1), (0.2, 3)])
def test_until_matches_the_slnas_reference_loop(drop_prob, epochs):
    ours = [drop_path_rate_for_epoch(drop_prob, e, epochs, 0.7) for e in range(epochs)]
    assert ours == pytest.approx(slnas_reference_rates(drop_prob, epochs), abs=1e-12)


def test_until_ramps_then_holds_the_last_ramped_rate():
    assert [drop_path_rate_for_epoch(0.5, e, 10, 0.7) for e in range(10)] == pytest.approx(
        [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.3, 0.3, 0.3])
    # 600 epochs: epochs 0..419 ramp, 420..599 hold 0.35 * 419 / 600
    assert drop_path_rate_for_epoch(0.35, 599, 600, 0.7) == pytest.approx(0.35 * 419 / 600)
    assert [drop_path_rate_for_epoch(0.4, e, 5, 0.0) for e in range(5)] == [0.0] * 5


def test_until_out_of_range_raises():
    with pytest.raises(ValueError, match="until"):
        drop_path_rate_for_epoch(0.3, 0, 10, 1.5)


def test_drop_path_until_key_default_and_one_line_errors():
    assert load_config(None, []).train.drop_path_until == 1.0
    assert load_config(None, ["train.drop_path_until=0.7"]).train.drop_path_until == 0.7
    for value in ("1.5", "-0.1", "soon"):
        with pytest.raises(ConfigError) as err:
            load_config(None, [f"train.drop_path_until={value}"])
        message = str(err.value)
        assert "train.drop_path_until: expected a number in [0.0, 1.0]" in message and "\n" not in message
