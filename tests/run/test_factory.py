"""Config -> objects: datasets, spaces, method/space fit, proxies (tfnas/run/factory.py)."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfnas.config import ConfigError, load_config
from tfnas.spaces.zen import DEFAULT_START as ZEN_DEFAULT_START
from tfnas.run.factory import build_datasets, build_proxy, build_space, check_method_fits_space, dataset_head


def _batches(ds):
    return [(np.asarray(x), np.asarray(y)) for x, y in ds]


def test_build_datasets_from_config_sections(monkeypatch):
    import tfnas.data

    pipelines = []  # the [train] augmentation keys reach the training pipeline (shapes alone did not show it)
    make_pipeline = tfnas.data.make_pipeline
    monkeypatch.setattr(tfnas.data, "make_pipeline", lambda ds, **kw: pipelines.append(kw) or make_pipeline(ds, **kw))
    cfg = load_config(None, ["dataset.name=cifar10", "dataset.download=false", "dataset.batch_size=4",
                             "dataset.eval_batch_size=5", "dataset.train_subset=9", "train.cutout=8",
                             "train.mixup_alpha=0.2", "train.random_erasing=0.25"])
    with tfds.testing.mock_data(num_examples=12):
        train_ds, eval_ds, info = build_datasets(cfg)
        train = _batches(train_ds)
        evals = _batches(eval_ds)
    given, evaluated = pipelines
    assert (given["training"], given["cutout"], given["mixup_alpha"], given["random_erasing"]) == (True, 8, 0.2, 0.25)
    assert evaluated["training"] is False and "cutout" not in evaluated
    assert any(not set(np.unique(y)) <= {0.0, 1.0} for _, y in train)  # mixed-up (soft) training labels
    assert info.name == "cifar10" and info.num_classes == 10
    assert [x.shape for x, _ in train] == [(4, 32, 32, 3)] * 2  # 9 examples, remainder dropped
    assert [y.shape for _, y in train] == [(4, 10)] * 2
    assert [x.shape[0] for x, _ in evals] == [5, 5, 2]
    for _, y in evals:
        np.testing.assert_array_equal(y.sum(axis=1), 1.0)
        assert set(np.unique(y)) <= {0.0, 1.0}


def test_build_datasets_rejects_subset_smaller_than_batch():
    cfg = load_config(None, ["dataset.batch_size=64", "dataset.train_subset=10"])
    with pytest.raises(ConfigError, match=r"--set dataset\.train_subset=10 is smaller"):
        build_datasets(cfg)


@pytest.mark.parametrize("sets, expected", [
    (["dataset.name=cifar10"], (10, (32, 32, 3))),
    (["dataset.name=cifar100"], (100, (32, 32, 3))),
    (["dataset.name=imagenet16-120"], (120, (16, 16, 3))),
    (["dataset.name=imagenet16-120", "dataset.image_size=24"], (120, (24, 24, 3))),
])
def test_dataset_head_is_the_one_shape_lookup(sets, expected):
    assert dataset_head(load_config(None, sets)) == expected


def test_spaces_get_their_arguments_from_the_factory():
    zen = build_space(load_config(None, ["space.name=zen", "dataset.name=imagenet16-120", "dataset.image_size=24"]))
    assert (zen.num_classes, zen.resolution) == (120, 24)
    darts = build_space(load_config(None, ["space.name=darts", "train.aux_weight=0"]))
    assert darts.auxiliary is False
    tiny = build_space(load_config(None, ["space.name=tinynano", "space.channels=16", "budget.max_flops=0"]))
    assert tiny.widths == (16, 32, 64) and tiny.flops_limit is None
    with pytest.raises(ConfigError, match=r"^--set space\.start; <defaults>: \[space\] family: Zen arch"):
        build_space(load_config(None, ["space.name=zen", "space.start=SuperResK3K3(3,8)"]))


@pytest.mark.parametrize("sets, fragment", [
    (["method.name=siamese", "space.name=zen"], "needs a space with GraphSpace; 'zen' has not"),
    (["method.name=relativenas", "space.name=nb201"], "needs a space with DartsSpace"),
    (["method.name=proxy_corr", "space.name=zen"], "needs a space with TabularSpace"),
    (["method.name=rand", "space.name=zen"], "needs a space with GraphSpace; 'zen' has not"),
    (["method.name=nag", "space.name=zen"], "needs a space with GraphSpace; 'zen' has not"),
])
def test_a_method_that_does_not_fit_the_space_is_refused_before_any_work(sets, fragment):
    with pytest.raises(ConfigError, match=r"^--set space\.name: method") as info:
        check_method_fits_space(load_config(None, sets))
    assert fragment in str(info.value)


def test_fitting_methods_pass():
    for sets in (["method.name=siamese"], ["method.name=siamese", "space.name=tinynano"], ["method.name=evolution",
                 "space.name=zen"], ["method.name=relativenas", "space.name=darts"]):
        check_method_fits_space(load_config(None, sets))


def test_build_proxy_takes_declared_options():
    proxy = build_proxy("grad_norm", load_config(None, ["proxy.grad_norm=layer_sum"]))
    assert proxy.name == "grad_norm"


def test_zen_space_from_the_dataset_section():
    cfg = load_config(None, ["space.name=zen", "dataset.name=cifar100", "space.family=mobile"])
    space = build_space(cfg)
    assert (space.num_classes, space.resolution, space.family, space.start) == (100, 32, "mobile", ZEN_DEFAULT_START)
    cfg = load_config(None, ["space.name=zen", "dataset.name=imagenet16-120", "dataset.image_size=24"])
    assert (build_space(cfg).num_classes, build_space(cfg).resolution) == (120, 24)
    with pytest.raises(ConfigError, match="start"):
        build_space(load_config(None, ["space.name=zen", "space.start=SuperResK3K3(3,8)"]))


def test_a_zen_start_must_take_the_images_channels_and_the_error_names_where_each_key_came_from(tmp_path, caplog,
                                                                                              monkeypatch):
    from tfnas.run import factory

    path = tmp_path / "zen.cfg"
    path.write_text("[space]\nname = zen\nfamily = resnet\n")
    start = "SuperConvK3BNRELU(4,8,1,1)SuperResK3K3(8,16,1,8,1)SuperConvK1BNRELU(16,32,1,1)"
    with pytest.raises(ConfigError) as caught:
        build_space(load_config(str(path), [f"space.start={start}"]))
    assert str(caught.value) == (f"--set space.start; {path}: [space] family: the first block "
                                 f"SuperConvK3BNRELU(4,8,1,1) takes 4 channels but the images have 3")
    with pytest.raises(ConfigError, match=r"^--set space\.blocks; <defaults>: \[space\] channels: "):
        build_space(load_config(None, ["space.name=lite", "space.blocks="]))
    # a start of another family than the searched one: allowed (mutations replace its blocks), with a warning
    with caplog.at_level("WARNING", logger="tfnas.run.factory"):
        monkeypatch.setattr(factory, "_WARNED_STARTS", set())
        space = build_space(load_config(str(path), ["space.family=mobile"]))
        build_space(load_config(str(path), ["space.family=mobile"]))  # a run builds it again: warned once
    assert space.family == "mobile" and space.start == ZEN_DEFAULT_START
    assert [r.getMessage()[:67] for r in caplog.records] == [
        "[space] start holds SuperResK3K3, not blocks of the searched mobile"]


def test_a_mirrored_strategy_for_a_weight_sharing_search_is_named_as_unused_by_its_supernet(tmp_path, caplog):
    """RelativeNAS, SLNAS and NAG's supernets train on one device whatever [run] strategy says."""
    from tfnas.methods.relativenas import RelativeNasSearch
    from tfnas.run.method_args import relativenas

    sets = ["method.name=relativenas", "space.name=darts", "dataset.name=cifar10", "dataset.download=false",
            f"dataset.data_dir={tmp_path}", "dataset.train_subset=8", "search.batch_size=4", "run.jit_compile=false"]
    for strategy, warned in (("mirrored", True), ("auto", False)):
        caplog.clear()
        cfg = load_config(None, sets + [f"run.strategy={strategy}"])
        with tfds.testing.mock_data(num_examples=8):
            relativenas(RelativeNasSearch, cfg, build_space(cfg))
        assert ("[run] strategy = mirrored: the relativenas search trains its supernet on one device"
                in caplog.text) is warned


class _Stop(Exception):
    pass


@pytest.mark.parametrize("cfg, target", [("cfg/relativenas_tiny.cfg", "tfnas.run.method_args.load_halves"),
                                         ("cfg/slnas_tiny.cfg", "tfnas.methods.weight_sharing.load_split"),
                                         ("cfg/nag_tiny.cfg", "tfnas.methods.weight_sharing.load_split")])
def test_the_weight_sharing_searches_read_their_images_at_image_size(tmp_path, monkeypatch, cfg, target):
    # The searches used to read the images at their native size while the training after them resized them.
    from tfnas.run.factory import build_method

    asked = {}

    def capture(*args, **kwargs):
        asked.update(kwargs)
        raise _Stop

    monkeypatch.setattr(target, capture)
    c = load_config(cfg, [f"run.out_dir={tmp_path}", "dataset.image_size=24"])
    with pytest.raises(_Stop):
        build_method(c, build_space(c))
    assert asked["image_size"] == 24


def test_keys_of_sections_the_run_never_reads_are_named_in_one_warning(caplog):
    """`--set nag.pool=10` in a rand sweep, or an export format where nothing is trained, ran without a word."""
    import glob
    import logging

    from tfnas.run import check_flow, flow_of
    from tfnas.run.unused import unused_keys

    def warnings_of(path, sets=()):
        cfg = load_config(path, list(sets))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tfnas.run.unused"):
            check_flow(cfg, flow_of(cfg))
        return [r.getMessage() for r in caplog.records if "not used by method" in r.getMessage()]

    (message,) = warnings_of("cfg/rand.cfg", ["nag.pool=10", "controller.kind=ga", "predictor.epochs=5",
                                              "export.format=tflite", "budget.repeats=2"])
    assert message.startswith("cfg/rand.cfg: not used by method 'rand', so without effect: ")
    for part in ("--set nag.pool (read by methods nag, nag_supernet)", "--set controller.kind (read by methods "
                 "slnas, slnas_controller)", "--set predictor.epochs (read by methods siamese, predictor)",
                 "--set export.format (read by a search that trains its result)"):
        assert part in message
    assert "budget" not in message
    assert warnings_of("cfg/zen_cifar10_tflite_pareto.cfg", ["export.format=tflite"])  # [train] enabled = false
    assert not warnings_of("cfg/zen_cifar10_tflite_pareto.cfg", ["train.enabled=true", "export.format=tflite"])
    assert not warnings_of("cfg/siams_nsam.cfg", ["predictor.epochs=5"])
    (message,) = warnings_of("cfg/proxy_corr_nb201.cfg", ["proxy.names=flops"])  # a key of the file: its file once
    assert message.count("cfg/proxy_corr_nb201.cfg") == 1 and ": [proxy] grad_norm (read by proxies" in message
    (message,) = warnings_of("cfg/zen_cifar10_1M.cfg", ["budget.repeats=7", "budget.stop=77"])  # a sweep's range
    assert "--set budget.repeats (read by the budgeted sweeps)" in message and "budget.stop" in message
    for path in sorted(glob.glob("cfg/*.cfg")):  # the shipped configs set nothing they do not use
        if os.path.basename(path).startswith("train_"):  # tools/train.py's
            assert not unused_keys(load_config(path), "train"), path
        else:
            assert not warnings_of(path), path

    # keys of a method's own section that only its sibling or the other controller kind reads
    (message,) = warnings_of("cfg/nag_nb201.cfg", ["nag.holdout=0.3", "nag.labels=table"])
    assert "nag.holdout (read by method nag_supernet)" in message and "labels" not in message
    (message,) = warnings_of("cfg/slnas_controller_nb201.cfg", ["controller.ga_population=50", "controller.hidden=32",
                                                                  "controller.tanh_constant=2.0"])
    assert "controller.ga_population (read by [controller] kind = ga)" in message
    assert "controller.tanh_constant (read by method slnas)" in message and "hidden" not in message
    # [proxy]: where no proxy is built, the keys of proxies not built, proxy_corr's own keys
    (message,) = warnings_of("cfg/rand.cfg", ["proxy.name=zen", "proxy.batch_size=16"])
    assert "proxy.name (read by methods evolution and proxy_corr" in message
    assert "proxy.batch_size (read by a run that builds a proxy)" in message
    (message,) = warnings_of("cfg/synflow_cifar10_1M.cfg", ["proxy.zen_bn_variance=running", "proxy.subset=10"])
    assert "proxy.zen_bn_variance (read by proxies " in message and "zen" in message.split("zen_bn_variance")[1]
    assert "proxy.subset (read by method proxy_corr)" in message
    assert not warnings_of("cfg/zen_cifar10_1M.cfg", ["proxy.zen_bn_variance=running", "proxy.batch_size=16"])
    assert not warnings_of("cfg/siams_nsam.cfg", ["predictor.ec_source=zen", "proxy.zen_bn_variance=running"])
    assert warnings_of("cfg/siams_nsam.cfg", ["proxy.zen_bn_variance=running"])  # ec_source = table: no proxy
    # [train] given with --set where nothing trains; read by a training oracle and the training EC (flip, pad_crop)
    (message,) = warnings_of("cfg/siams_nsam.cfg", ["train.epochs=3"])
    assert "--set train.epochs (read by a search that trains its result" in message
    assert warnings_of("cfg/zen_cifar10_tflite_pareto.cfg", ["train.epochs=30"])  # [train] enabled = false
    assert not warnings_of("cfg/zen_cifar10_1M.cfg", ["train.epochs=30"])
    assert not warnings_of("cfg/tinynano_siams.cfg", ["train.epochs=3"])
    assert not warnings_of("cfg/slnas_tiny.cfg", ["train.cutout=8", "train.enabled=false"])
    (message,) = warnings_of("cfg/relativenas_tiny.cfg", ["train.lr=0.5", "train.flip=false", "train.enabled=false"])
    assert "--set train.lr" in message and "flip" not in message  # the search's augmentation only
    assert not warnings_of("cfg/siams_nsam.cfg", ["predictor.ec_source=train", "train.flip=false"])
    assert warnings_of("cfg/siams_nsam.cfg", ["predictor.ec_source=train", "train.epochs=3"])


def test_the_shared_search_keys_of_other_methods_are_named_and_tolerated(caplog):
    """`--set search.population=20` in a rand sweep ran without a word, and its run directory refused the
    run without it as "a different configuration"."""
    import logging

    from tfnas.run import check_flow, flow_of
    from tfnas.run.unused import tolerated

    cfg = load_config("cfg/rand.cfg", ["search.population=20", "search.generations=3", "search.pool_size=50"])
    with caplog.at_level(logging.WARNING, logger="tfnas.run.unused"):
        check_flow(cfg, flow_of(cfg))
    (message,) = [r.getMessage() for r in caplog.records if "not used by method" in r.getMessage()]
    assert "--set search.population (read by methods evolution, relativenas)" in message
    assert "--set search.generations (read by methods relativenas)" in message
    assert "--set search.pool_size (read by the budgeted searches (on an open space))" in message  # NB201: every cell
    assert ("search", "population") in tolerated(cfg, "sweep") and ("search", "pool_size") in tolerated(cfg, "sweep")
    tiny = load_config("cfg/tinynano_siams.cfg", ["search.pool_size=50"])  # an open space: the sweep draws a pool
    assert ("search", "pool_size") not in tolerated(tiny, "sweep")
    relative = load_config("cfg/relativenas_tiny.cfg", ["search.population=4", "search.pool_size=50"])
    assert ("search", "population") not in tolerated(relative, "search")
    assert ("search", "pool_size") in tolerated(relative, "search")  # read by the sweeps only
    for method in ("rand", "siamese", "evolution", "slnas", "proxy_corr"):  # read by every run
        other = load_config("cfg/rand.cfg", [f"method.name={method}"])
        assert not {("search", "objective"), ("search", "max_latency_ms")} & set(tolerated(other, "sweep"))


def test_the_search_keys_each_builder_reads_are_listed_as_read():
    """:data:`SEARCH_KEYS` against the builders' source: a key a builder (or a helper of method_args it
    calls) reads must not be called without effect, nor tolerated by the run directory."""
    import ast
    import inspect

    from tfnas.registry import METHODS
    from tfnas.run import method_args
    from tfnas.run.unused import SEARCH_ALWAYS, SEARCH_KEYS

    def search_keys_of(fn, seen):
        tree, keys = ast.parse(inspect.getsource(fn).lstrip()), set()
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):  # s = cfg.search, or n, s = cfg.nag, cfg.search
                pairs = zip(node.targets[0].elts, node.value.elts) if isinstance(node.value, ast.Tuple) and \
                    isinstance(node.targets[0], ast.Tuple) else [(node.targets[0], node.value)]
                aliases |= {target.id for target, value in pairs
                            if isinstance(value, ast.Attribute) and value.attr == "search"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                keys.add(node.attr)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == "search":
                keys.add(node.attr)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in seen:
                helper = getattr(method_args, node.func.id, None)
                if inspect.isfunction(helper) and helper.__module__ == method_args.__name__:
                    seen.add(node.func.id)
                    keys |= search_keys_of(helper, seen)
        return keys

    checked = 0
    for name in METHODS.names():
        cls = METHODS.get(name)
        builder = next(method_args.BUILDERS[k] for k in cls.__mro__ if k in method_args.BUILDERS)
        read = search_keys_of(builder, {builder.__name__})
        if name == "predictor":  # the shared builder passes them on; only the siamese variant re-ranks by code
            read -= {"rank_k", "final_rank_k"}
            assert not getattr(cls, "uses_code")
        assert read <= set(SEARCH_KEYS[name]) | set(SEARCH_ALWAYS), (name, read - set(SEARCH_KEYS[name]))
        checked += bool(read)
    assert checked >= 4  # evolution, relativenas, slnas, nag_supernet, the predictor searches


def test_image_loading_keys_are_without_effect_where_no_images_are_loaded():
    """`--set dataset.data_dir=...` in a rand sweep on the table was refused by its run directory."""
    from tfnas.run.unused import tolerated, unused_keys

    sweep = load_config("cfg/rand.cfg", ["dataset.data_dir=.", "dataset.batch_size=8"])
    assert {("dataset", "data_dir"), ("dataset", "batch_size")} <= {(s, k) for s, k, _ in unused_keys(sweep, "sweep")}
    for sets, flow in ((["benchmark.name=train"], "sweep"), (["method.name=siamese", "predictor.ec_source=train"],
                                                              "sweep"), ([], "search")):
        reads = load_config("cfg/rand.cfg", ["dataset.data_dir=."] + sets)
        assert ("dataset", "data_dir") not in tolerated(reads, flow), sets
    assert ("dataset", "image_size") not in tolerated(sweep, "sweep")  # the networks' input shape
    assert ("run", "jit_compile") in tolerated(sweep, "sweep")
    from tfnas.run import unused

    plugin = {k: v for k, v in unused.SEARCH_KEYS.items() if k != "rand"}  # rand as a method of a user's own
    with __import__("unittest").mock.patch.object(unused, "SEARCH_KEYS", plugin):
        assert not {("dataset", "data_dir"), ("run", "jit_compile")} & set(tolerated(sweep, "sweep"))
    for method in ("nag", "relativenas"):
        assert ("run", "jit_compile") not in tolerated(load_config("cfg/rand.cfg", [f"method.name={method}"]),
                                                       "sweep" if method == "nag" else "search")


def test_a_tinynano_space_error_names_the_keys_behind_it():
    """A width error blamed [budget] max_flops too, a FLOPs-limit error the widths too."""
    from tfnas.run.factory import build_space

    with pytest.raises(ConfigError) as widths:
        build_space(load_config(None, ["space.name=tinynano", "space.channels=3"]))
    assert "--set space.channels" in str(widths.value) and "max_flops" not in str(widths.value)
    with pytest.raises(ConfigError) as flops:
        build_space(load_config(None, ["space.name=tinynano", "space.channels=16", "budget.max_flops=1"]))
    assert str(flops.value).startswith("--set budget.max_flops: ") and "channels" not in str(flops.value).split(":")[0]


def test_a_reserve_the_searches_cannot_take_is_said(caplog):
    """`search.reserve=100` with 2 predictor epochs at budget 10 reserved nothing: the same records as reserve=0."""
    import logging

    from tfnas.run.factory import build_method

    cfg = load_config("cfg/siams_nsam.cfg", ["search.reserve=100", "predictor.epochs=2", "budget.start=10",
                                             "budget.stop=10"])
    with caplog.at_level(logging.WARNING, logger="tfnas.run.method_args"):
        build_method(cfg, build_space(cfg))
    said = [r.getMessage() for r in caplog.records]
    assert said == ["--set search.reserve: 100 queries, but one is reserved per check epoch: 2 ([predictor] epochs) "
                    "are",
                    "--set search.reserve: budgets of 101 or less reserve no queries (from [budget] start = 10)"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tfnas.run.method_args"):
        build_method(load_config("cfg/siams_nsam.cfg"), build_space(cfg))
    assert not caplog.records


@pytest.mark.parametrize("path, sets, said", [
    ("cfg/brp_nas.cfg", ["brp.iterations=20", "budget.start=10"],  # ran 5 rounds while config.cfg said 20
     "--set brp.iterations: 20 rounds, but a round queries at least 2 cells: budgets below 40 run budget // 2 rounds "
     "(from [budget] start = 10)"),
    ("cfg/proxy_corr_nb201.cfg", ["proxy.subset=99999", "proxy.names=random"],  # scored all 15,625 cells
     "--set proxy.subset: 99999 cells, but the space holds 15625: every cell is scored"),
])
def test_values_a_method_takes_less_of_are_said(caplog, path, sets, said):
    import logging

    from tfnas.run.factory import build_method

    cfg = load_config(path, sets)
    with caplog.at_level(logging.WARNING, logger="tfnas.run.method_args"):
        build_method(cfg, build_space(cfg))
    assert [r.getMessage() for r in caplog.records] == [said]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tfnas.run.method_args"):
        build_method(load_config(path), build_space(cfg))
    assert not caplog.records


def test_a_zero_shot_search_names_and_tolerates_the_keys_it_never_reads(tmp_path, caplog):
    """A Zen evolution that does not train its result took `space.channels=32`, `dataset.batch_size=64` or (filter off)
    `search.max_rho=0.9` without a word, and its run directory then refused a rerun with another value."""
    from tfnas.run.unused import tolerated, unused_keys

    sets = ["train.enabled=false", "space.channels=32", "space.blocks=3,3", "dataset.batch_size=32",
            "dataset.train_subset=100", "search.max_rho=0.9"]
    cfg = load_config("cfg/zen_cifar10_1M.cfg", sets)
    assert not cfg.search.effectiveness_filter
    named = {(s, k): reader for s, k, reader in unused_keys(cfg, "search")}
    assert {("space", "channels"), ("space", "blocks"), ("dataset", "batch_size"), ("dataset", "train_subset"),
            ("search", "max_rho")} <= set(named)
    assert "effectiveness_filter = true" in named[("search", "max_rho")] and "lite" in named[("space", "blocks")]
    keep = set(tolerated(cfg, "search"))
    assert not {("space", "start"), ("space", "family"), ("dataset", "name"), ("dataset", "image_size")} & keep
    trains = load_config("cfg/zen_cifar10_1M.cfg", sets[1:] + ["search.effectiveness_filter=true"])
    assert not {("dataset", "batch_size"), ("search", "max_rho")} & set(tolerated(trains, "search"))
    assert ("space", "channels") in tolerated(trains, "search")  # the Zen space never reads it, trained or not
    for name, read in (("darts", "layers"), ("lite", "blocks"), ("nb201", "cells_per_stage")):
        assert ("space", read) not in tolerated(load_config(None, [f"space.name={name}"]), "search"), name
    # the filter off: max_rho is no part of the search state's identity either, so a rerun resumes it
    from tfnas.run.factory import build_method, build_space

    from tfnas.methods.evolution_state import same_search

    ids = [build_method(load_config("cfg/zen_cifar10_1M.cfg", ["train.enabled=false", f"search.max_rho={rho}"]),
                        build_space(cfg))._identity() for rho in (0.5, 0.9)]
    # a file's [run] jit_compile is kept for tools/train.py, as its [dataset] and [train] keys; --set is named
    path = tmp_path / "zen.cfg"
    path.write_text(open("cfg/zen_cifar10_1M.cfg").read().replace("[run]\n", "[run]\njit_compile = true\n", 1))
    assert "jit_compile = true" in path.read_text()
    assert ("run", "jit_compile") not in {(s, k) for s, k, _ in unused_keys(load_config(str(path), sets), "search")}
    named = unused_keys(load_config("cfg/zen_cifar10_1M.cfg", sets + ["run.jit_compile=true"]), "search")
    assert ("run", "jit_compile") in {(s, k) for s, k, _ in named}
    assert ids[0] != ids[1] and same_search(ids[0], ids[1], effectiveness_filter=False)
    assert not same_search(ids[0], ids[1], effectiveness_filter=True)
