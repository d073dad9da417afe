"""Config -> objects: the only code that reads :class:`~tfnas.config.Config`.

Every other part of tfnas takes plain typed arguments. Each ``build_*`` function unpacks the
sections a part needs and turns a part's ``ValueError`` into a :class:`ConfigError` naming the
file and section, so bad values fail before any work starts.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfnas.config import Config, ConfigError, TrainConfig
from tfnas.registry import BENCHMARKS, DATASETS, METHODS, PROXIES, SPACES
from tfnas.spaces.base import TabularSpace, require

logger = logging.getLogger(__name__)


def where(cfg: Config, section: str = "", key: str = "", value: Any = None) -> str:
    """How messages name the config: its file (or ``<defaults>``); with ``section`` and ``key``,
    where that value came from: ``--set section.key``, or ``file: [section] key``; with ``value``
    too, the setting as it was written (``--set section.key=value``, ``file: [section] key = value``)."""
    given = section and key and f"{section}.{key}" in cfg.overrides
    if given:
        return f"--set {section}.{key}" + ("" if value is None else f"={value}")
    label = cfg.source or "<defaults>"
    if not section:
        return label
    return f"{label}: [{section}]" + (f" {key}" if key else "") + ("" if value is None else f" = {value}")


# -- datasets -------------------------------------------------------------------------------

def dataset_head(cfg: Config) -> Tuple[int, Tuple[int, int, int]]:
    """``(num_classes, input_shape)`` of the networks for ``[dataset]``: the registered source's
    class count (10 when it does not know, e.g. an image folder before it is read) and native
    side, ``[dataset] image_size`` when set, else 32."""
    num_classes, side, channels = 10, 32, 3
    if cfg.dataset.name in DATASETS:
        source = DATASETS.get(cfg.dataset.name)
        num_classes = int(getattr(source, "num_classes", 0) or 10)
        native = getattr(source, "image_shape", None)
        if native:
            side, channels = int(native[0]), int(native[2])
        else:
            side = int(getattr(source, "default_size", 0) or 32)
    side = cfg.dataset.image_size or side
    return num_classes, (side, side, channels)


def build_datasets(cfg: Config) -> Tuple[Any, Any, Any]:
    """``[dataset]`` and ``[train]`` -> ``(train_ds, eval_ds, info)`` pipelines seeded by ``[run] seed``.

    ``train_ds`` is shuffled, augmented and drops the last partial batch; ``eval_ds`` is in
    order, unaugmented and keeps every example.
    """
    from tfnas.data import load_dataset, make_pipeline

    d, t = cfg.dataset, cfg.train
    check_full_batch(cfg)
    common = dict(data_dir=d.data_dir, manual_dir=d.manual_dir, download=d.download, image_size=d.image_size)
    train_raw, info = load_dataset(d.name, split="train", subset=d.train_subset, **common)
    check_full_batch(cfg, int(train_raw.cardinality()))
    check_training_images(cfg, info.image_shape, info.num_classes)
    eval_raw, _ = load_dataset(d.name, split="eval", subset=d.eval_subset, **common)
    for key, subset, ds in (("train_subset", d.train_subset, train_raw), ("eval_subset", d.eval_subset, eval_raw)):
        warn_subset_above_split(cfg, key, subset, int(ds.cardinality()))
    stats = dict(num_classes=info.num_classes, mean=info.mean, std=info.std, seed=cfg.run.seed)
    train_ds = make_pipeline(train_raw, batch_size=d.batch_size, training=True, flip=t.flip, pad_crop=t.pad_crop,
                             cutout=t.cutout, mixup_alpha=t.mixup_alpha, random_erasing=t.random_erasing,
                             color_jitter=t.color_jitter, hue_jitter=t.hue_jitter, grayscale=t.grayscale,
                             low_resolution=t.low_resolution, random_resized_crop=t.random_resized_crop,
                             drop_remainder=True, **stats)
    eval_ds = make_pipeline(eval_raw, batch_size=d.eval_batch_size, training=False, drop_remainder=False, **stats)
    return train_ds, eval_ds, info


def check_training_images(cfg: Config, image_shape: Any, num_classes: int = 2) -> None:
    """``ConfigError`` naming the key when ``[train] pad_crop`` or ``cutout`` exceeds the side of the images they
    augment (``image_shape``, ``(H, W, C)``): a pad of 10**9 pixels overflowed TensorFlow's shape arithmetic, and a
    cutout larger than the image erased every training image. Also when the data has one class (an image folder
    of one class folder): every answer right, a loss of 0 and an accuracy of 100 % that mean nothing."""
    if num_classes < 2:
        d = cfg.dataset
        key = ("data_dir", d.data_dir) if d.name == "image_folder" else ("name", d.name)
        raise ConfigError(f"{where(cfg, 'dataset', *key)}: its training images hold {num_classes} class; a classifier "
                          f"needs two or more (an image folder: train/<class>/*, a folder per class)")
    side = int(min(image_shape[:2]))
    for key, value in (("pad_crop", cfg.train.pad_crop), ("cutout", cfg.train.cutout)):
        if value > side:
            raise ConfigError(f"{where(cfg, 'train', key)}: expected at most the images' side ({side} pixels, "
                              f"[dataset] {cfg.dataset.name}), got {value:,}")


_WARNED_SUBSETS: set = set()


def warn_subset_above_split(cfg: Config, key: str, subset: int, examples: int) -> None:
    """A warning when ``[dataset] key`` (``train_subset`` / ``eval_subset``) asks for more examples than the split
    holds (``examples``: the cardinality after the subset, negative when not known): the whole split is used."""
    said = (cfg.dataset.name, cfg.dataset.data_dir, key, subset, examples)  # once: a search checks, then trains
    if subset > 0 and 0 <= examples < subset and said not in _WARNED_SUBSETS:
        _WARNED_SUBSETS.add(said)
        logger.warning("%s: %s holds %d examples, fewer than asked; all %d are used", where(cfg, "dataset", key),
                       cfg.dataset.name, examples, examples)


def check_full_batch(cfg: Config, examples: int = -1) -> None:
    """``ConfigError`` when training would see no full batch of ``[dataset] batch_size`` (the
    training pipeline drops the last partial batch): ``train_subset`` or the split's ``examples``
    (negative: not known) below it."""
    d = cfg.dataset
    if 0 < d.train_subset < d.batch_size:
        raise ConfigError(f"{where(cfg, 'dataset', 'train_subset', d.train_subset)} is smaller than [dataset] "
                          f"batch_size = {d.batch_size}, so training would see no full batch; lower batch_size "
                          f"or raise train_subset")
    if 0 <= examples < d.batch_size:
        raise ConfigError(f"{where(cfg, 'dataset', 'batch_size', d.batch_size)} is larger than the {examples} "
                          f"training examples of {d.name}, so training would see no full batch; lower batch_size")


def check_training_data(cfg: Config) -> Any:
    """Raises now, not after a search, when ``[dataset]`` cannot be read (``DatasetNotFoundError``)
    or holds no full training batch (``ConfigError``). Nothing is iterated: both splits are only
    opened and the training split's size is read from its metadata. Returns the training split's
    ``DatasetInfo``."""
    from tfnas.data import load_dataset

    d = cfg.dataset
    check_full_batch(cfg)
    for split, subset in (("train", d.train_subset), ("eval", 1)):
        ds, info = load_dataset(d.name, split=split, data_dir=d.data_dir, manual_dir=d.manual_dir,
                                download=d.download, subset=subset, image_size=d.image_size)
        if split == "train":
            check_full_batch(cfg, int(ds.cardinality()))
            check_training_images(cfg, info.image_shape, info.num_classes)
            warn_subset_above_split(cfg, "train_subset", d.train_subset, int(ds.cardinality()))
            train_info = info
    return train_info


def check_trained_network_builds(cfg: Config, space: Any, info: Any) -> None:
    """Builds, before a search, the network its training will build after it, for one sampled
    architecture at the training images' shape (``info``): an image size the network cannot take
    (an auxiliary head needs 32x32, the reductions need sides they divide) is a config error now,
    not after the search. The checks are about shapes, so any architecture of the space shows them."""
    from tfnas.train.seeding import LayerSeedStream

    arch = space.sample(np.random.default_rng(cfg.run.seed))
    kwargs = {"drop_path_rate": 0.0} if cfg.train.drop_path > 0 else {}
    try:
        with LayerSeedStream(cfg.run.seed).active():  # the caller's `random` stream is left as it was
            space.build(arch, info.num_classes, info.image_shape, **kwargs)
    except ValueError as exc:
        shape = "x".join(map(str, info.image_shape))
        keys = ("dataset.image_size", "train.aux_weight") if "auxiliary" in str(exc) else ("dataset.image_size",)
        raise ConfigError(f"{keys_where(cfg, keys)}: the network trained after the search cannot be built for the "
                          f"images of [dataset] ({info.name}, {shape}): {exc}") from None


# -- spaces ---------------------------------------------------------------------------------

def build_space(cfg: Config) -> Any:
    """The configured search space."""
    cls = SPACES.get(cfg.space.name)
    s, name = cfg.space, cfg.space.name
    if s.dropout and name != "nasnet_dag":  # after the method's space check: a wrong space is named first
        raise ConfigError(f"{where(cfg, 'space', 'dropout')}: only the nasnet_dag space has a classifier dropout; "
                          f"expected 0 for space {name!r}, got {s.dropout}")
    if name == "nb201":
        kwargs: Dict[str, Any] = {"channels": s.channels, "cells_per_stage": s.cells_per_stage}
    elif name == "darts":
        # the auxiliary head exists when training weighs it ([train] aux_weight > 0)
        kwargs = {"channels": s.channels, "layers": s.layers, "search_channels": s.search_channels,
                  "search_layers": s.search_layers, "auxiliary": cfg.train.aux_weight > 0}
    elif name == "zen":
        num_classes, shape = dataset_head(cfg)
        kwargs = {"start": s.start, "family": s.family, "resolution": shape[0], "num_classes": num_classes,
                  "kernel_weights": s.kernel_weights}
    elif name == "nasnet_dag":
        kwargs = {"channels": s.channels, "layers": s.layers, "search_channels": s.search_channels,
                  "search_layers": s.search_layers, "auxiliary": cfg.train.aux_weight > 0, "dropout": s.dropout}
    elif name == "lite":
        kwargs = {"channels": s.channels, "blocks": s.blocks, "auxiliary": cfg.train.aux_weight > 0}
    elif name == "tinynano":
        c = s.channels
        kwargs = {"widths": (c, 2 * c, 4 * c), "cells_per_block": s.cells_per_stage,
                  "flops_limit": cfg.budget.max_flops or None}
    else:
        kwargs = {}
    try:
        space = cls(**kwargs)
        if name == "zen":
            check_zen_start(space, image_channels=shape[2])
        return space
    except ValueError as exc:
        keys = {"zen": "space.start space.family", "tinynano": "space.channels space.cells_per_stage budget.max_flops",
                "darts": "space.channels space.layers space.search_channels space.search_layers",
                "nb201": "space.channels space.cells_per_stage",
                "lite": "space.channels space.blocks",
                "nasnet_dag": "space.channels space.layers space.search_channels space.search_layers",
                }.get(name, "")
        if name == "tinynano":  # the FLOPs limit, or the widths
            keys = "budget.max_flops" if "flops_limit" in str(exc) else "space.channels space.cells_per_stage"
        raise ConfigError(f"{keys_where(cfg, keys.split()) if keys else where(cfg, 'space')}: {exc}") from None


_WARNED_STARTS: set = set()


def check_zen_start(space: Any, image_channels: int) -> None:
    """The start of a Zen search must take the images' channels (``ValueError``). Residual blocks of
    another family than the searched one are allowed (the default start is ResNet-like, also for
    ``family = mobile``) with a warning: mutations replace them one at a time, so the networks
    found mix the two families."""
    first = space.start_arch[0]
    if first.cin != image_channels:
        raise ValueError(f"the first block {first} takes {first.cin} channels but the images have {image_channels}")
    from tfnas.spaces.zen.space import FAMILY_KINDS

    other = [b.kind for b in space.start_arch if not b.is_conv and b.kind not in FAMILY_KINDS[space.family]]
    if other and (space.start, space.family) not in _WARNED_STARTS:  # a run builds its space more than once
        _WARNED_STARTS.add((space.start, space.family))
        logger.warning("[space] start holds %s, not blocks of the searched %s family: mutations replace them one "
                       "at a time, so the networks found may mix both families (give a start of %s blocks to "
                       "avoid it)", ", ".join(sorted(set(other))), space.family, space.family)


def keys_where(cfg: Config, keys: Sequence[str]) -> str:
    """Where a group of ``section.key`` settings came from: the ``--set`` ones, then the file's
    (``--set space.blocks; cfg/x.cfg: [space] channels``), for an error that involves them all."""
    given = [f"--set {k}" for k in keys if k in cfg.overrides]
    in_file: Dict[str, List[str]] = {}
    for k in keys:
        if k not in cfg.overrides:
            section, key = k.split(".", 1)
            in_file.setdefault(section, []).append(key)
    parts = [f"[{section}] {' / '.join(names)}" for section, names in in_file.items()]
    file_part = f"{where(cfg)}: {', '.join(parts)}" if parts else ""
    return "; ".join(given + ([file_part] if file_part else []))


def refuse_multi_worker(cfg: Config, flow: str, trains: bool) -> None:
    """Refuses ``[run] strategy = multi_worker`` for a search or sweep that trains networks with the
    strategy (no work done): its collective ops must be configured before TensorFlow runs any op, and
    a search or sweep has run many by the time it trains a network, so only ``tools/train.py`` can
    train that way. Where ``flow`` trains nothing, the key is said to be unused instead."""
    if cfg.run.strategy != "multi_worker":
        return
    if not trains:
        logger.warning("%s: multi_worker: not used, %s trains no network here", where(cfg, "run", "strategy"), flow)
        return
    raise ConfigError(f"{where(cfg, 'run', 'strategy')}: multi_worker training is for tools/train.py only; "
                      f"{flow} runs TensorFlow before it trains, so it cannot set up the workers. Use "
                      f"mirrored or one_device here, and train a found architecture on several workers with "
                      f"tools/train.py (--set space.arch=...)")


def check_method_fits_space(cfg: Config) -> None:
    """Refuses a method whose ``requires`` the configured space's type does not meet (no work done).

    Budgeted searches see open spaces through a candidate pool (tabular by construction), so for
    them tabular access is not checked against the space itself; the pool's own need (the graph
    view, :class:`~tfnas.spaces.pool.CandidatePool`) is.
    """
    from tfnas.methods.base import BudgetedSearch
    from tfnas.spaces.base import GraphSpace, TabularSpace

    method_cls = METHODS.get(cfg.method.name)
    space_cls = SPACES.get(cfg.space.name)
    needs = tuple(getattr(method_cls, "requires", ()))
    if issubclass(method_cls, BudgetedSearch):
        needs = tuple(n for n in needs if n is not TabularSpace)
        if not issubclass(space_cls, TabularSpace) and GraphSpace not in needs:
            needs += (GraphSpace,)  # an open space is searched through a CandidatePool
    missing = [n.__name__ for n in needs if not issubclass(space_cls, n)]
    if missing:
        fitting = [s for s in SPACES.names() if all(issubclass(SPACES.get(s), n) for n in needs)]
        raise ConfigError(f"{where(cfg, 'space', 'name')}: method {cfg.method.name!r} needs a space with "
                          f"{', '.join(missing)}; {cfg.space.name!r} has not (spaces that fit: "
                          f"{', '.join(fitting) or 'none'})")


# -- benchmarks -----------------------------------------------------------------------------

def build_benchmark(cfg: Config, space: Any) -> Any:
    """The configured ground truth: a table (``nb201``) or the training oracle (``train``)."""
    name = cfg.benchmark.name
    if name == "none":
        raise ConfigError(f"{where(cfg, 'benchmark', 'name')}: method {cfg.method.name!r} needs a benchmark "
                          f"(e.g. nb201)")
    cls = BENCHMARKS.get(name)
    if name == "train":
        d = cfg.dataset
        training = short_training(cfg, space, cfg.train, batch_size=d.batch_size, train_subset=d.train_subset,
                                  eval_subset=d.eval_subset, eval_batch_size=d.eval_batch_size)
        return cls(space, training_evaluator(cfg, space, training, "oracle"))
    if not cfg.benchmark.source:
        return cls()
    from tfnas.benchmarks.safe_pickle import BenchmarkFormatError

    try:
        return cls(source=cfg.benchmark.source)
    except (BenchmarkFormatError, FileNotFoundError, NotADirectoryError) as exc:  # (a damaged file's own class)
        raise type(exc)(f"{where(cfg, 'benchmark', 'source')}: {exc}") from None


def short_training(cfg: Config, space: Any, train_cfg: TrainConfig, **kwargs: Any) -> Any:
    """A :class:`~tfnas.evaluation.training.ShortTraining` of ``train_cfg`` on ``[dataset]``."""
    from tfnas.evaluation.training import ShortTraining

    d = cfg.dataset
    try:
        return ShortTraining(space, train_cfg, dataset=d.name, data_dir=d.data_dir, manual_dir=d.manual_dir,
                             download=d.download, image_size=d.image_size, seed=cfg.run.seed,
                             jit_compile=cfg.run.jit_compile, strategy=cfg.run.strategy, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"{where(cfg)}: [dataset]: {exc}") from None


def training_evaluator(cfg: Config, space: Any, training: Any, kind: str) -> Any:
    """A cached :class:`~tfnas.evaluation.training.TrainingEvaluator`; its cache lives in
    ``<run dir>/ec_cache/`` (kind ``ec``) or ``<run dir>/oracle_cache/`` (kind ``oracle``)."""
    from tfnas.evaluation.training import TrainCache, TrainingEvaluator, check_accuracy, check_losses

    evaluate = kind == "oracle"
    check = check_accuracy if evaluate else check_losses(training.train_cfg.epochs)
    cache = TrainCache(os.path.join(cfg.out_dir, f"{kind}_cache"), kind, training.recipe(evaluate=evaluate), check)
    return TrainingEvaluator(space, training, cache, kind)


# -- proxies --------------------------------------------------------------------------------

def proxy_options(name: str, cfg: Config) -> Dict[str, Any]:
    """The ``[proxy]`` keys proxy ``name`` takes (declared by the proxy), as keyword arguments."""
    from tfnas.proxies.base import proxy_options as declared

    return declared(name, cfg.proxy)


def build_proxy(name: str, cfg: Config, key: str = "name") -> Any:
    """Proxy ``name`` with its ``[proxy]`` options; an unknown name names ``[proxy] <key>``."""
    from tfnas.proxies.base import get_proxy

    if name not in PROXIES:
        raise ConfigError(f"{where(cfg, 'proxy', key)}: unknown proxy {name!r}; registered proxies: "
                          f"{', '.join(PROXIES.names())}")
    options = proxy_options(name, cfg)
    if options.get("zen_weight") == options.get("entropy_weight") == 0:  # (an Incorporated score)
        raise ConfigError(f"{where(cfg, 'proxy', 'zen_weight', 0)}, {where(cfg, 'proxy', 'entropy_weight', 0)}: every "
                          f"{name} score would be 0, and the search's pick arbitrary; give one of them a weight > 0")
    return get_proxy(name, **options)


# -- estimation codes -----------------------------------------------------------------------

def build_ec_factory(cfg: Config, space: Any) -> Optional[Callable[[], Any]]:
    """The ``[predictor] ec_source`` factory: None for ``table`` (read through the session)."""
    source = cfg.predictor.ec_source
    if source == "table":
        return None
    if source == "train":
        from tfnas.predictors.estimation import DEFAULT_EC_SUBSET, EC_BATCH_SIZE, TrainingEstimationCode

        require(space, TabularSpace, "[predictor] ec_source = train")
        train_cfg = ec_train_config(cfg)
        training = short_training(cfg, space, train_cfg, batch_size=EC_BATCH_SIZE,
                                  train_subset=cfg.predictor.ec_subset or cfg.dataset.train_subset or DEFAULT_EC_SUBSET)
        evaluator = training_evaluator(cfg, space, training, "ec")
        return lambda: TrainingEstimationCode(space, evaluator, dim=train_cfg.epochs)
    from tfnas.predictors.estimation import proxy_ec_factory

    num_classes, shape = dataset_head(cfg)
    return proxy_ec_factory(build_proxy(source, cfg, key="ec_source"), space, num_classes=num_classes,
                            input_shape=shape, batch_size=cfg.proxy.batch_size, seed=cfg.run.seed)


def ec_train_config(cfg: Config) -> TrainConfig:
    """The ``train`` estimation code's recipe (Siamese-NAS reference): ``[predictor] ec_epochs``
    of constant Adam 1e-3, no decay or clipping, flip and pad-crop per ``[train]``, batch 16, on
    the first ``[predictor] ec_subset`` training images (``[dataset] train_subset`` when 0, and 512 when
    that is 0 too)."""
    from tfnas.predictors.estimation import EC_LR

    return TrainConfig(epochs=cfg.predictor.ec_epochs, optimizer="adam", lr=EC_LR, schedule="constant",
                       weight_decay=0.0, grad_clip=0.0, flip=cfg.train.flip, pad_crop=cfg.train.pad_crop)


# -- methods --------------------------------------------------------------------------------

def build_method(cfg: Config, space: Any) -> Any:
    """The configured method, built from typed arguments by its builder in :mod:`tfnas.run.method_args`."""
    from tfnas.run.method_args import BUILDERS

    cls = METHODS.get(cfg.method.name)
    for klass in cls.__mro__:
        if klass in BUILDERS:
            try:
                return BUILDERS[klass](cls, cfg, space)
            except ConfigError:
                raise
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{where(cfg)}: method {cfg.method.name!r}: {exc}") from None
    raise ConfigError(f"{where(cfg, 'method', 'name')}: no builder for method {cfg.method.name!r} "
                      f"({cls.__name__}); add one to tfnas/run/method_args.py")


# -- executors ------------------------------------------------------------------------------

def build_executor(cfg: Config) -> Any:
    """The :mod:`~tfnas.evaluation.executors` executor of ``[run] executor / workers / ray_address``.

    A ``process`` pool gets ``workers`` processes (0 = one per GPU when GPUs are visible, else one
    per core; each worker sees one GPU, in turn), each with ``[run] worker_threads`` TensorFlow
    threads; a private ``local`` Ray instance reserves a 512 MiB object store (tfnas sends
    architecture strings, not tensors).
    """
    from tfnas.evaluation.executors import ExecutorError, RayAddressError, make_executor

    r = cfg.run
    unused = [where(cfg, "run", k, getattr(r, k)) for k, default, used in (
        ("workers", 0, r.executor != "local"), ("worker_threads", 0, r.executor != "local"),
        ("ray_address", "local", r.executor == "ray")) if getattr(r, k) != default and not used]
    if unused:  # (each named where it was set: the file, or --set)
        logger.warning("%s: not used with executor = %s", "; ".join(unused), r.executor)
    try:
        return make_executor(r.executor, r.workers, threads=r.worker_threads, address=r.ray_address,
                             ray_init={"object_store_memory": 512 * 1024 ** 2})
    except RayAddressError as exc:  # no cluster there: the address is what to fix (a private one failing: executor)
        if r.ray_address == "local":
            raise ConfigError(f"{where(cfg, 'run', 'executor', r.executor)}: {exc}") from None
        raise ConfigError(exc.said_as(where(cfg, "run", "ray_address", r.ray_address))) from None
    except ExecutorError as exc:
        raise ConfigError(f"{where(cfg, 'run', 'executor', r.executor)}: {exc}") from None
