"""The search progress figure (``search_progress.png``) of ``history.csv`` rows."""

import pytest

from tfnas.run.search import history_figure


@pytest.mark.parametrize("rows", [2, 3, 7])
def test_an_integral_first_column_gets_integral_ticks_only(rows):
    fig = history_figure([{"epoch": e + 1, "train_loss": 1.0 / (e + 1)} for e in range(rows)])
    ax = fig.axes[-1]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_xlabel() == "epoch"


def test_a_fractional_first_column_keeps_its_fractional_ticks():
    fig = history_figure([{"time": 0.1 * k, "loss": float(k)} for k in range(4)])
    ax = fig.axes[-1]
    fig.canvas.draw()
    assert any(not float(t).is_integer() for t in ax.get_xticks())


def test_nothing_to_draw_gives_no_figure():
    assert history_figure([]) is None
    assert history_figure([{"epoch": 1, "arch": "x"}]) is None


def test_counters_of_rows_of_two_phases_stay_integers_and_are_no_panels(tmp_path):
    """NAG's history.csv held `epoch` = 1.0, `steps` = 3.0 (a supernet row has neither), and its figure drew
    them as metrics."""
    from tfnas.run.store import ArtifactStore
    from tfnas.run.search import HistoryLog

    rows = [{"step": 1, "phase": "supernet", "lr": 0.1, "train_loss": 2.0},
            {"step": 2, "phase": "gan", "epoch": 1, "steps": 3, "loss": 0.5}]
    log = HistoryLog(ArtifactStore(str(tmp_path)))
    for row in rows:
        log.append(row)
    assert (tmp_path / "history.csv").read_text().splitlines() == [
        "step,phase,lr,train_loss,epoch,steps,loss", "1,supernet,0.1,2.0,,,", "2,gan,,,1,3,0.5"]
    assert HistoryLog(ArtifactStore(str(tmp_path))).rows[1]["epoch"] == 1  # read back (a resumed search)
    fig = history_figure(rows)
    assert [ax.get_ylabel() for ax in fig.axes] == ["lr", "train_loss", "loss"]
