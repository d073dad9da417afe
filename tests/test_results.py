import json
import math
import os
import subprocess
import sys

import pytest

from tfnas.results import RunLog, RunRecord, load_run_dir, summary_frame, write_outputs


def record(budget, repeat, acc, method="rand"):
    return RunRecord(method=method, dataset="cifar10", budget=budget, repeat=repeat, seed=repeat, queries=budget,
                     ec_evals=0, arch=f"|a{budget}{repeat}|", top1_acc=acc, spearman=0.5 if repeat else math.nan)


def test_run_log_round_trips_records_with_nan(tmp_path):
    path = str(tmp_path / "runs.jsonl")
    log = RunLog(path)
    log.append(record(10, 0, 90.0))
    log.append(record(10, 1, 91.0))
    again = RunLog(path)
    assert again.keys() == {(10, 0), (10, 1)} and (10, 1) in again
    assert math.isnan(again.records[0].spearman) and again.records[1].spearman == 0.5
    assert [r.to_dict() for r in again.records] == [r.to_dict() for r in log.records]
    assert load_run_dir(str(tmp_path))[1].top1_acc == 91.0


def test_runs_jsonl_is_strict_json_with_a_nan_in_extra(tmp_path):
    """A constant ranking's Spearman (NaN) in `extra` was written as a bare NaN, which jq and other strict readers
    refuse."""
    def strict(text):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in runs.jsonl"))

    path = str(tmp_path / "runs.jsonl")
    rec = record(10, 0, 90.0)
    rec.extra = {"ranking_spearman": [float("nan"), 0.25], "ratio": float("inf")}
    RunLog(path).append(rec)
    (line,) = open(path).read().splitlines()
    assert strict(line)["extra"] == {"ranking_spearman": [None, 0.25], "ratio": None}
    assert RunLog(path).records[0].extra["ranking_spearman"] == [None, 0.25]


def test_run_log_drops_damaged_rows_with_a_warning_and_writes_a_clean_file(tmp_path, caplog):
    path = tmp_path / "runs.jsonl"
    good = [record(10, 0, 90.0), record(10, 1, 91.0)]
    wrong_type = dict(record(20, 0, 92.0).to_dict(), budget="20")
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in good)  # two good records,
                    + json.dumps(good[0].to_dict()) + "\n"  # a duplicate of the first,
                    + json.dumps(wrong_type) + "\n"  # a record whose budget is a string,
                    + '{"method": "x"}\n'  # a row missing fields,
                    + '{"method": "rand", "dataset": "cif')  # and a half-written last line (a crash)
    with open(path, "ab") as fh:
        fh.write(b"\n\xff\xfe not UTF-8\n")  # and bytes that are not text,
        fh.write(b"[" * 100000 + b"]" * 100000 + b"\n")  # and JSON nested deeper than Python recurses
    with caplog.at_level("WARNING"):
        log = RunLog(str(path))
    assert log.keys() == {(10, 0), (10, 1)} and len(log.records) == 2
    assert len(log.dropped) == 6 and "runs.jsonl:8: dropped" in caplog.text
    assert "runs.jsonl:7: dropped" in caplog.text and "codec can't decode" in caplog.text
    assert "runs.jsonl:3: dropped, a second record of budget 10 repeat 0" in caplog.text
    assert "runs.jsonl:4: dropped" in caplog.text and "'budget' must be an integer" in caplog.text
    assert "runs.jsonl:5: dropped" in caplog.text and "misses fields" in caplog.text
    assert "runs.jsonl:6: dropped" in caplog.text
    log.append(record(20, 0, 92.0))  # the recomputed record; the file is clean again
    again = RunLog(str(path))
    assert again.dropped == [] and again.keys() == {(10, 0), (10, 1), (20, 0)}


def test_run_log_refuses_records_of_another_config(tmp_path):
    path = str(tmp_path / "runs.jsonl")
    log = RunLog(path, config_id="aaaa")
    rec = record(10, 0, 90.0)
    rec.config_id = "aaaa"
    log.append(rec)
    assert RunLog(path, config_id="aaaa").keys() == {(10, 0)}
    with pytest.raises(ValueError, match=r"runs\.jsonl:1: this record was made by another configuration"):
        RunLog(path, config_id="bbbb")


def test_outputs_are_written_and_follow_the_umask(tmp_path):
    saved = os.umask(0o027)
    try:
        records = [record(b, r, 90.0 + b / 10 + r, m) for m in ("rand", "siamese") for b in (10, 20) for r in (0, 1)]
        df = write_outputs(str(tmp_path), records, optimum={"cifar10": 94.37}, title="t")
    finally:
        os.umask(saved)
    assert len(df) == 8 and list(df["method"]) == ["rand"] * 4 + ["siamese"] * 4
    names = sorted(os.listdir(str(tmp_path)))
    assert names == ["accuracy_vs_budget.png", "best_arch.txt", "summary.csv"]
    for name in names:
        assert os.stat(str(tmp_path / name)).st_mode & 0o777 == 0o640
    assert (tmp_path / "accuracy_vs_budget.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "best_arch.txt").read_text().startswith("|a201|\n")
    assert len(summary_frame(records)) == 8


def test_plotting_uses_neither_pyplot_nor_a_global_backend(tmp_path):
    code = ("import sys, matplotlib; from tfnas.results import plot_accuracy, summary_frame, RunRecord; "
            "r = [RunRecord('m', 'd', b, 0, 0, b, 0, 'x', 90.0) for b in (1, 2)]; "
            f"plot_accuracy(summary_frame(r), {str(tmp_path / 'p.png')!r}); "
            "print('matplotlib.pyplot' in sys.modules, matplotlib.rcParams['backend'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MPLBACKEND": "svg"}).stdout.split()
    assert out == ["False", "svg"]
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_run_log_drops_values_no_run_makes_and_records_of_another_method_or_dataset(tmp_path, caplog):
    path = tmp_path / "runs.jsonl"
    rows = [dict(record(10, 0, 90.0).to_dict(), repeat=-1), dict(record(10, 1, 90.0).to_dict(), repeat=10 ** 30),
            dict(record(10, 2, 250.0).to_dict()), dict(record(10, 3, 90.0).to_dict(), budget=0),
            dict(record(10, 4, 90.0).to_dict(), spearman=1.5), dict(record(10, 5, 90.0).to_dict(), wall_s=-1.0),
            record(10, 6, 90.0, method="siamese").to_dict(), dict(record(10, 7, 90.0).to_dict(), dataset="cifar100"),
            dict(record(10, 8, 0.0).to_dict(), spearman=1.0000000000000002)]  # perfect, one rounding step over
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level("WARNING"):
        log = RunLog(str(path), expect={"method": "rand", "dataset": "cifar10"})
    assert log.keys() == {(10, 8)} and len(log.dropped) == 8
    for n, fragment in [(1, "'repeat' must lie in [0, 2147483647], got -1"), (2, "'repeat' must lie in [0, "),
                        (3, "'top1_acc' must lie in [0.0, 100.0], got 250.0"), (4, "'budget' must lie in [1, "),
                        (5, "'spearman' must lie in [-1.000000001, 1.000000001], got 1.5"),
                        (6, "'wall_s' must lie in [0.0, inf]"),
                        (7, "dropped, its method is 'siamese' but this run's is 'rand'; it will be recomputed"),
                        (8, "dropped, its dataset is 'cifar100' but this run's is 'cifar10'")]:
        assert f"runs.jsonl:{n}: " in log.dropped[n - 1] and fragment in log.dropped[n - 1], (n, log.dropped[n - 1])
    assert len(RunLog(str(path)).records) == 3  # tools/compare.py expects nothing: the edited labels are read


def test_run_log_drops_non_finite_numbers_and_a_missing_accuracy(tmp_path, caplog):
    path = tmp_path / "runs.jsonl"
    rows = [dict(record(10, 0, 90.0).to_dict(), top1_acc=None),  # null only where "not applicable" is allowed
            dict(record(10, 1, 90.0).to_dict(), regret=float("inf")),
            dict(record(10, 2, 90.0).to_dict(), top1_acc=float("nan")),
            dict(record(10, 3, 90.0).to_dict(), regret=None)]  # null regret: not applicable, kept
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # json writes NaN and Infinity literally
    with caplog.at_level("WARNING"):
        log = RunLog(str(path))
    assert log.keys() == {(10, 3)} and math.isnan(log.records[0].regret)
    assert "'top1_acc' must be a finite number, got None); it will be recomputed" in caplog.text
    assert "'regret' must be a finite number or null, got inf" in caplog.text
    assert "'top1_acc' must be a finite number, got nan" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert [r.key for r in load_run_dir(str(tmp_path))] == [(10, 3)]  # tools/compare.py reads, never recomputes
    assert "got None); left out" in caplog.text and "recomputed" not in caplog.text


def test_a_runs_file_link_that_leads_nowhere_is_said_to_be_one(tmp_path):
    (tmp_path / "runs.jsonl").symlink_to(tmp_path / "runs.jsonl")  # a link to itself: a loop
    with pytest.raises(ValueError, match="runs.jsonl: a symbolic link that leads to no file"):
        load_run_dir(str(tmp_path))


def test_compare_draws_no_table_optimum_for_records_of_an_open_space(tmp_path, monkeypatch):
    """Training-oracle records (an open space: no optimum, no regret) got NAS-Bench-201's CIFAR-10 optimum drawn
    as theirs; table records keep it."""
    import tfnas.results
    from tfnas.compare import compare

    drawn, write = {}, tfnas.results.write_outputs

    def seen(out, records, optimum, **kwargs):
        drawn.clear()
        drawn.update(optimum)
        return write(out, records, optimum, **kwargs)

    monkeypatch.setattr(tfnas.results, "write_outputs", seen)
    oracle, table = tmp_path / "oracle", tmp_path / "table"
    RunLog(str(oracle / "runs.jsonl")).append(record(10, 0, 60.0, method="siamese"))
    compare([str(oracle)], str(tmp_path / "cmp"))
    assert drawn == {}
    tabular = record(10, 0, 90.0)
    tabular.regret, tabular.optimum = 4.37, 94.37
    RunLog(str(table / "runs.jsonl")).append(tabular)
    compare([str(table)], str(tmp_path / "cmp2"))
    assert drawn == {"cifar10": 94.37}


def test_compare_keeps_datasets_and_constraints_apart(tmp_path, monkeypatch, capsys):
    """best_arch.txt named one best over CIFAR-10 and CIFAR-100 records (CIFAR-10's accuracies run higher), and
    a constrained and an unconstrained run shared one table, their regrets to different optima, one optimum drawn."""
    import tfnas.results
    from tfnas.compare import compare

    drawn, write = {}, tfnas.results.write_outputs

    def seen(out, records, optimum, **kwargs):
        drawn.update(optimum)
        return write(out, records, optimum, **kwargs)

    monkeypatch.setattr(tfnas.results, "write_outputs", seen)
    free, bound, other = record(10, 0, 72.0), record(10, 0, 71.0), record(10, 0, 93.0)
    for r, dataset, optimum, constraint in ((free, "cifar100", 73.51, ""),
                                            (bound, "cifar100", 72.88, "pixel3 latency <= 20 ms"),
                                            (other, "cifar10", 94.37, "")):
        r.dataset, r.optimum, r.constraint, r.arch = dataset, optimum, constraint, f"|{dataset}{constraint[:6]}|"
        r.regret = optimum - r.top1_acc
        RunLog(str(tmp_path / f"{dataset}{constraint[:6]}" / "runs.jsonl")).append(r)
    runs = [str(tmp_path / name) for name in ("cifar100", "cifar100pixel3", "cifar10")]
    compare(runs, str(tmp_path / "cmp"))
    table = capsys.readouterr().out
    assert "rand (cifar100) [unconstrained]" in table and "rand (cifar100pixel3) [pixel3 latency <= 20 ms]" in table
    (row,) = [line for line in table.splitlines() if " cifar10 " in line]
    assert row.split()[0] == "rand" and "[" not in row  # one run of CIFAR-10: labelled as it was
    assert drawn["cifar100"] == [(73.51, "unconstrained"), (72.88, "pixel3 latency <= 20 ms")]
    assert drawn["cifar10"] == 94.37
    best = (tmp_path / "cmp" / "best_arch.txt").read_text().splitlines()
    assert best[0] == "|cifar10|" and "cifar10 budget=10" in best[1]
    assert best[2] == "|cifar100|" and "cifar100 budget=10" in best[3] and len(best) == 4


def test_the_table_gives_no_spread_for_one_repeat_and_no_negative_zero():
    """n = 1 printed "± 0.00" (a spread of one value) and a Kendall of -0.0004 printed "-0.000"."""
    from tfnas.results import format_table

    one = record(10, 0, 90.0)
    one.kendall = -0.0004
    table = format_table(summary_frame([one, record(20, 0, 91.0), record(20, 1, 93.0)]))
    row10, row20 = [line for line in table.splitlines() if line.startswith("rand")]
    assert "±" not in row10 and " 90.00 " in f"{row10} " and "-0.000" not in row10 and "0.000" in row10
    assert "92.00 ± 1.41" in row20


def test_compare_prints_the_optimum_the_regrets_are_measured_to(tmp_path, capsys):
    """tools/train_eval.py prints the optimum after its table; tools/compare.py printed none, so its regrets had no
    reference on screen."""
    from tfnas.compare import compare

    for name, optimum, constraint in (("free", 73.51, ""), ("bound", 72.88, "pixel3 latency <= 20 ms"),
                                      ("open", 94.37, "none (pareto:pixel3)")):
        r = record(10, 0, 70.0)
        r.dataset, r.optimum, r.constraint, r.regret = "cifar100", optimum, constraint, optimum - 70.0
        RunLog(str(tmp_path / name / "runs.jsonl")).append(r)
    compare([str(tmp_path / "free")], str(tmp_path / "c1"))
    assert "\nbenchmark optimum (cifar100): 73.51%\n" in capsys.readouterr().out
    compare([str(tmp_path / "bound")], str(tmp_path / "c2"))
    assert "\nconstrained optimum (cifar100, pixel3 latency <= 20 ms): 72.88%\n" in capsys.readouterr().out
    compare([str(tmp_path / "open")], str(tmp_path / "c3"))  # a Pareto objective without a limit: every cell counts
    assert "\nbenchmark optimum (cifar100): 94.37%\n" in capsys.readouterr().out
    compare([str(tmp_path / "free"), str(tmp_path / "bound")], str(tmp_path / "c4"))
    out = capsys.readouterr().out
    assert "optimum (cifar100, unconstrained): 73.51%" in out
    assert "optimum (cifar100, pixel3 latency <= 20 ms): 72.88%" in out


def test_the_accuracy_plot_of_one_budget_has_whole_budgets_on_its_axis(tmp_path, monkeypatch):
    """A one-budget plot put ticks at 9.96, 9.98, 10.00, ... on the budget axis."""
    from tfnas.results import plot_accuracy

    ticks = []

    def keep_ticks(fig, path, **kwargs):
        axis = fig.axes[0].xaxis
        ticks.extend(t for t in axis.get_major_locator()() if axis.get_view_interval()[0] <= t
                     <= axis.get_view_interval()[1])

    monkeypatch.setattr("tfnas.results.atomic_write_figure", keep_ticks)
    plot_accuracy(summary_frame([record(10, 0, 90.0), record(10, 1, 91.0)]), str(tmp_path / "p.png"))
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
