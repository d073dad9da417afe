"""perf.memory and perf.zen_fidelity on a few candidates (the figures themselves are in docs/PERFORMANCE.md)."""

import json

import pytest

from perf import memory, zen_fidelity


def test_memory_samples_a_short_search(capsys):
    figures = memory.run(population=8, candidates=4, warmup=2, every=1)
    assert [n for n, _ in figures["samples"]] == [0, 1, 2, 3, 4]
    assert figures["rss_end_mb"] > 0 and figures["peak_rss_mb"] >= figures["max_after_warmup_mb"] * 0.99
    assert figures["growth_pct"] == pytest.approx(
        100 * (figures["rss_end_mb"] - figures["rss_warmup_mb"]) / figures["rss_warmup_mb"], abs=0.01)
    assert "zen layer functions" in figures["caches"]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["bench"] == "memory"
    with pytest.raises(ValueError, match="warmup"):
        memory.run(candidates=4, warmup=4)
    with pytest.raises(ValueError, match="release_every"):
        memory.run(candidates=4, warmup=2, release_every=0)
    with pytest.raises(ValueError, match="release=True only"):
        memory.run(candidates=4, warmup=2, release_every=2)
    with pytest.raises(ValueError, match="multiple of release_every"):
        memory.run(candidates=4, warmup=2, every=3, release=True, release_every=2)
    with pytest.raises(RuntimeError, match="before TensorFlow"):  # TensorFlow is loaded by now
        memory.run(candidates=4, warmup=2, release=True)


def test_zen_fidelity_writes_both_forms(tmp_path):
    out = tmp_path / "zen.json"
    figures = zen_fidelity.run(cells=3, out=str(out), batch=4)
    data = json.loads(out.read_text())
    assert len(data["archs"]) == len(data["plans"]) == len(data["batch_form"]) == len(data["running_form"]) == 3
    assert data["seeds"] == [0, 1, 2] and data["resolution"] == 32
    # the batch form is larger by about log sqrt(1 / 0.19) per BN at N(0, 1) kernels
    assert figures["batch_minus_running_mean"] > 0
