"""One builder per method family: ``[method]``, ``[predictor]``, ``[search]``, ... -> keyword arguments.

A builder takes ``(method class, config, space)`` and returns the method; it is the only place
a method's configuration is read. ``BUILDERS`` maps a method class (or a base class) to its builder.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict

import numpy as np

from tfnas.config import Config, ConfigError
from tfnas.evaluation.executors import Job
from tfnas.evaluation.latency import LatencyEvaluator, LatencyMeasurer, LatencySetup
from tfnas.methods.brp import BrpSearch
from tfnas.methods.evolution import EvolutionSearch, Limits
from tfnas.methods.nag.paper import NagSupernetSearch
from tfnas.methods.nag.search import NagSearch
from tfnas.methods.proxy_corr import NB201_DATASETS, ProxyCorrelation
from tfnas.methods.random_search import RandomSearch
from tfnas.methods.relativenas import RelativeNasSearch, load_halves
from tfnas.methods.siamese import PredictorSearch
from tfnas.methods.slnas.nb201 import ControllerSearch
from tfnas.methods.slnas.rewards import LiteSupernetRecipe
from tfnas.methods.slnas.search import SlnasSearch
from tfnas.registry import BENCHMARKS
from tfnas.run.constraints import measured_latency_limit, parse_objective
from tfnas.run.factory import (build_benchmark, build_ec_factory, build_proxy, check_training_images, dataset_head,
                               warn_subset_above_split, where)

logger = logging.getLogger(__name__)


def _supernet_on_one_device(cfg: Config) -> None:
    """A warning for ``[run] strategy = mirrored`` with a weight-sharing search (``multi_worker`` is
    refused for every search): its supernet steps run on one device (the first GPU); the strategy
    applies to the found network's training after the search. More GPUs serve such a search through
    ``[run] executor`` workers."""
    if cfg.run.strategy == "mirrored":
        logger.warning("%s: [run] strategy = %s: the %s search trains its supernet on one device; the strategy "
                       "applies to the found network's training only", where(cfg), cfg.run.strategy, cfg.method.name)

BUILDERS: Dict[type, Callable[[type, Config, Any], Any]] = {}


def builds(*classes: type) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        for cls in classes:
            BUILDERS[cls] = fn
        return fn

    return register


def _check_search_batch(cfg: Config, data: Any) -> None:
    """``ConfigError`` when the shared weights' batch (``[search] batch_size``, 0: ``[dataset] batch_size``) is
    larger than the images that train them (``data[0]``, of :func:`load_split`): every step was one partial
    batch of them all, as if the batch had been smaller, without a word; or when their augmentation does not fit
    the images (:func:`~tfnas.run.factory.check_training_images`). Warns of a ``train_subset`` above the split."""
    s, d = cfg.search, cfg.dataset
    batch, images = s.batch_size or d.batch_size, len(data[0])
    if batch > images:
        key = ("search", "batch_size") if s.batch_size else ("dataset", "batch_size")
        raise ConfigError(f"{where(cfg, *key, batch)}: larger than the {images:,} images that train the shared "
                          f"weights, so no step would see a full batch; lower it or raise [dataset] train_subset")
    check_training_images(cfg, data[0].shape[1:], data[4].num_classes)  # (the shared weights' batches are augmented)
    warn_subset_above_split(cfg, "train_subset", d.train_subset, len(data[1]) + len(data[3]))


@builds(RandomSearch)
def random_search(cls: type, cfg: Config, space: Any) -> RandomSearch:
    return cls(space_size=space.size)


@builds(PredictorSearch)
def predictor_search(cls: type, cfg: Config, space: Any) -> PredictorSearch:
    p, s, siamese = cfg.predictor, cfg.search, cls.uses_code
    # Unlike the Trainer's convnets, the predictor step is a few hundred tiny ops at batch 8:
    # XLA fuses them and is faster on CPU too (docs/PERFORMANCE.md), so auto = on.
    jit = {"true": True, "false": False}.get(p.jit_compile, True)
    ec_factory = build_ec_factory(cfg, space) if siamese else None
    _say_reserve_used(cfg)
    return cls(space, siamese=siamese, nsam=p.nsam, bts=s.bts, units=p.units, epochs=p.epochs,
               batch_size=p.batch_size, lr=p.lr, lr_final=p.lr_final, huber_delta=p.huber_delta,
               init_fraction=s.init_fraction, update_split=s.update_split, sample_fraction=s.sample_fraction,
               rank_k=s.rank_k, final_rank_k=s.final_rank_k, reserve=s.reserve, ec_source=p.ec_source,
               ec_factory=ec_factory, jit_compile=jit, name=cfg.method.name, max_budget=cfg.budget.stop)


def _say_reserve_used(cfg: Config) -> None:
    """A warning where ``[search] reserve`` is not what the searches reserve: one query per check epoch, so at most
    ``[predictor] epochs``, and none at a budget of ``reserve + 1`` or less (the search reads the config's value
    and takes less without a word)."""
    reserve, epochs, small = cfg.search.reserve, cfg.predictor.epochs, cfg.budget.start
    if reserve > epochs:
        logger.warning("%s: %d queries, but one is reserved per check epoch: %d ([predictor] epochs) are",
                       where(cfg, "search", "reserve"), reserve, epochs)
    if 0 < reserve and small <= reserve + 1:
        logger.warning("%s: budgets of %d or less reserve no queries (from [budget] start = %d)",
                       where(cfg, "search", "reserve"), reserve + 1, small)


@builds(BrpSearch)
def brp_nas(cls: type, cfg: Config, space: Any) -> BrpSearch:
    b = cfg.brp
    jit = {"true": True, "false": False}.get(b.jit_compile, True)  # auto = on: 1.4x on CPU too (PERFORMANCE.md)
    if b.iterations > cfg.budget.start // 2:  # (each round queries at least 2 cells)
        logger.warning("%s: %d rounds, but a round queries at least 2 cells: budgets below %d run budget // 2 rounds "
                       "(from [budget] start = %d)", where(cfg, "brp", "iterations"), b.iterations, 2 * b.iterations,
                       cfg.budget.start)
    return cls(space, units=b.units, layers=b.layers, dropout=b.dropout, lr=b.lr, weight_decay=b.weight_decay,
               epochs=b.epochs, batch_size=b.batch_size, iterations=b.iterations, top_fraction=b.top_fraction,
               jit_compile=jit)


@builds(EvolutionSearch)
def evolution(cls: type, cfg: Config, space: Any) -> EvolutionSearch:
    proxy = build_proxy(cfg.proxy.name, cfg)
    start = None
    if cfg.space.start:
        try:
            start = space.decode(cfg.space.start)
        except ValueError as exc:
            raise ConfigError(f"{where(cfg, 'space', 'start')}: {exc}") from None
    s, b = cfg.search, cfg.budget
    max_latency_ms = measured_latency_limit(cfg)
    pareto = parse_objective(cfg).kind == "pareto"
    limits = Limits(b.max_params, b.max_flops, b.max_layers, s.effectiveness_filter, s.max_rho, max_latency_ms)
    latency = None
    if max_latency_ms > 0 or pareto:  # measured on this machine, cached beside the run (shared by its seeds)
        if s.latency_threads > (os.cpu_count() or 1):
            logger.warning("%s: more LiteRT threads than this machine's %d CPU cores: they take turns, so the "
                           "latencies measured are those of fewer threads",
                           where(cfg, "search", "latency_threads", s.latency_threads), os.cpu_count() or 1)
        setup = LatencySetup((space.resolution, space.resolution, 3), space.num_classes, s.latency_threads,
                             s.latency_quantize, s.latency_runs, s.latency_warmup)
        latency = LatencyEvaluator(LatencyMeasurer(space, setup, os.path.join(cfg.out_dir, "latency_cache")))
    method = cls(space, proxy, proxy_name=cfg.proxy.name, population=s.population, iterations=s.iterations,
                 limits=limits, record_every=s.record_every, batch_size=cfg.proxy.batch_size, start=start,
                 batch=s.batch, latency=latency, pareto=pareto)
    reason = method.reject_reason(method.start)
    if reason:  # named where the limit was set (the file or --set), with what the start measures against it
        section, key, name, measure = {
            "params": ("budget", "max_params", "params", space.num_params),
            "flops": ("budget", "max_flops", "FLOPs", space.flops),
            "layers": ("budget", "max_layers", "layers", space.num_layers)}.get(
            reason, ("search", "max_rho", "the effectiveness filter's max rho", space.effectiveness))
        has, limit = (f"{int(v):,}" if float(v).is_integer() else f"{v:.4g}"
                      for v in (measure(method.start), getattr(getattr(cfg, section), key)))
        raise ConfigError(f"{where(cfg, section, key)}: the start architecture already breaks this limit ({name} "
                          f"{has} > {limit}); loosen it, or give a start within it ({where(cfg, 'space', 'start')})")
    return method


@builds(RelativeNasSearch)
def relativenas(cls: type, cfg: Config, space: Any) -> RelativeNasSearch:
    from tfnas.train.distribute import resolve_jit_compile

    _supernet_on_one_device(cfg)
    s, d = cfg.search, cfg.dataset
    if s.population % 2:
        raise ConfigError(f"{where(cfg, 'search', 'population')}: RelativeNAS pairs its members, so it must be even; "
                          f"got {s.population}")
    if s.lr_min > s.lr:
        raise ConfigError(f"{where(cfg, 'search', 'lr_min')}: must not exceed lr ({s.lr}); got {s.lr_min}")
    data = load_halves(d.name, data_dir=d.data_dir, manual_dir=d.manual_dir, download=d.download,
                       subset=d.train_subset, where=where(cfg), image_size=d.image_size)
    _check_search_batch(cfg, data)
    return cls(space, data, population=s.population, generations=s.generations,
               batch_size=s.batch_size or d.batch_size, steps_per_epoch=s.steps_per_epoch, lr=s.lr,
               lr_min=s.lr_min, momentum=s.momentum, weight_decay=s.weight_decay, grad_clip=s.grad_clip,
               drop_path=s.drop_path, cutout=cfg.train.cutout, flip=cfg.train.flip, pad_crop=cfg.train.pad_crop,
               jit_compile=resolve_jit_compile(cfg.run.jit_compile, auto=False))  # a supernet: XLA off unless asked


@builds(ControllerSearch)
def slnas_controller(cls: type, cfg: Config, space: Any) -> ControllerSearch:
    c = cfg.controller
    return cls(space, kind=c.kind, hidden=c.hidden, lr=c.lr, optimizer=c.optimizer, entropy_weight=c.entropy_weight,
               baseline_decay=c.baseline_decay, temperature=c.temperature, op_tanh_constant=c.op_tanh_constant,
               ga_population=c.ga_population, ga_crossover=c.ga_crossover, ga_mutation=c.ga_mutation)


def lite_supernet(num_classes: int, image_shape: Any, seed: int = 0, **args: Any) -> Any:
    """A :class:`~tfnas.spaces.lite.supernet.LiteSupernet`, traced once per configuration and process."""
    return LiteSupernetRecipe.of(num_classes, image_shape, **args)(seed)


@builds(SlnasSearch)
def slnas(cls: type, cfg: Config, space: Any) -> SlnasSearch:
    from tfnas.methods.slnas import GeneticController, StageController, lite_gene_bounds
    from tfnas.methods.weight_sharing import load_split
    from tfnas.train.distribute import resolve_jit_compile

    _supernet_on_one_device(cfg)
    s, d, c, sp = cfg.search, cfg.dataset, cfg.controller, cfg.space
    if s.lr_min > s.lr:
        raise ConfigError(f"{where(cfg, 'search', 'lr_min')}: must not exceed lr ({s.lr}); got {s.lr_min}")
    if not 0.0 < s.reward_fraction < 1.0:
        raise ConfigError(f"{where(cfg, 'search', 'reward_fraction')}: SLNAS needs images for both the shared weights "
                          f"and the rewards, so it must lie strictly between 0 and 1; got {s.reward_fraction}")
    stem_stride, reductions = 4, len(sp.search_blocks)
    if sp.search_channels < 4 or sp.search_channels % 2:  # (checked by the network only once it is built)
        raise ConfigError(f"{where(cfg, 'space', 'search_channels', sp.search_channels)}: the SLNAS search network "
                          f"needs an even width >= 4 (ShuffleNet units split the channels in halves)")
    if not sp.search_blocks:
        raise ConfigError(f"{where(cfg, 'space', 'search_blocks')}: needs at least one stage, e.g. 4, 4")
    data = load_split(d.name, data_dir=d.data_dir, manual_dir=d.manual_dir, download=d.download,
                      subset=d.train_subset, where=where(cfg), first_fraction=1.0 - s.reward_fraction,
                      divisor=stem_stride * 2 ** reductions,
                      who=f"the SLNAS search network (stems /4, {reductions} reductions)", image_size=d.image_size)
    _check_search_batch(cfg, data)
    info = data[4]
    jit = resolve_jit_compile(cfg.run.jit_compile, auto=False)  # a supernet: XLA off unless asked

    supernet = LiteSupernetRecipe.of(info.num_classes, info.image_shape, channels=sp.search_channels,
                                     blocks=tuple(sp.search_blocks), stem_stride=stem_stride, momentum=s.momentum,
                                     weight_decay=s.weight_decay, grad_clip=s.grad_clip, aux_weight=s.aux_weight,
                                     jit_compile=jit)  # picklable: worker processes build their own

    def controller(seed: int) -> Any:
        if c.kind == "ga":
            return GeneticController(lite_gene_bounds(), cell_types=2, population=c.ga_population,
                                     crossover=c.ga_crossover, mutation=c.ga_mutation, seed=seed)
        return StageController(hidden=c.hidden, temperature=c.temperature, tanh_constant=c.tanh_constant,
                               op_tanh_constant=c.op_tanh_constant, lr=c.lr, optimizer=c.optimizer,
                               entropy_weight=c.entropy_weight, baseline_decay=c.baseline_decay, seed=seed)

    identity = {"channels": sp.search_channels, "blocks": list(sp.search_blocks), "aux_weight": s.aux_weight,
                "momentum": s.momentum, "weight_decay": s.weight_decay, "grad_clip": s.grad_clip,
                "controller": {k: getattr(c, k) for k in c.__dataclass_fields__}}
    return cls(space, data, supernet, controller, epochs=s.epochs, batch_size=s.batch_size or d.batch_size,
               steps_per_epoch=s.steps_per_epoch, controller_steps=s.controller_steps, lr=s.lr, lr_min=s.lr_min,
               drop_path=s.drop_path, pick_epochs=s.pick_epochs, cutout=cfg.train.cutout, flip=cfg.train.flip,
               pad_crop=cfg.train.pad_crop, identity=identity)


@builds(ProxyCorrelation)
def proxy_correlation(cls: type, cfg: Config, space: Any) -> ProxyCorrelation:
    if cfg.dataset.name not in NB201_DATASETS:
        raise ConfigError(f"{where(cfg, 'dataset', 'name')}: proxy_corr compares with the NAS-Bench-201 table, which "
                          f"has {', '.join(NB201_DATASETS)}; got {cfg.dataset.name!r}")
    if cfg.benchmark.name == "none":
        raise ConfigError(f"{where(cfg, 'benchmark', 'name')}: proxy_corr needs the NAS-Bench-201 table (nb201)")
    if getattr(space, "name", "") != getattr(BENCHMARKS.get(cfg.benchmark.name), "space", None):
        raise ConfigError(f"{where(cfg, 'space', 'name')}: proxy_corr scores the cells of the {cfg.benchmark.name} "
                          f"table; got space {getattr(space, 'name', type(space).__name__)!r}")
    names = tuple(cfg.proxy.names) or (cfg.proxy.name,)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where(cfg, 'proxy', 'names')}: {', '.join(duplicates)} listed more than once")
    proxies = {name: build_proxy(name, cfg, key="names") for name in names}
    benchmark = build_benchmark(cfg, space)  # (a bad [benchmark] source is named as such)
    num_classes, shape = dataset_head(cfg)
    if cfg.proxy.subset >= space.size:
        logger.warning("%s: %d cells, but the space holds %d: every cell is scored", where(cfg, "proxy", "subset"),
                       cfg.proxy.subset, space.size)
    return cls(space, benchmark, proxies, dataset=cfg.dataset.name, num_classes=num_classes, input_shape=shape,
               batch_size=cfg.proxy.batch_size, subset=cfg.proxy.subset, seed=cfg.run.seed)


def _nag_model(n: Any) -> Dict[str, Any]:
    """The generator / discriminator settings of ``[nag]`` (both NAG methods)."""
    return dict(node_units=n.node_units, graph_units=n.graph_units, noise_dim=n.noise_dim, embed_dim=n.embed_dim,
                prop_layers=n.prop_layers, dropout=n.dropout, relax=n.relax, edges=n.edges)


@builds(NagSearch)
def nag(cls: type, cfg: Config, space: Any) -> NagSearch:
    from tfnas.spaces.nb201 import dag
    from tfnas.train.distribute import resolve_jit_compile

    n, d = cfg.nag, cfg.dataset
    if cfg.space.name != "nb201":
        raise ConfigError(f"{where(cfg, 'space', 'name')}: method 'nag' runs on a tabular space of DAG cells (nb201); "
                          f"got {cfg.space.name!r} (NAG on the paper's NASNet DAG space is method 'nag_supernet')")
    benchmark = build_benchmark(cfg, space)
    truth = benchmark.ground_truth(d.name)
    if truth is None:
        raise ConfigError(f"{where(cfg, 'benchmark', 'name')}: 'nag' labels its cells from a table; "
                          f"{cfg.benchmark.name!r} has none (use nb201)")
    label_acc = truth if n.labels == "table" else benchmark.low_fidelity(d.name, "val")
    distinct = len(dag.dag_lookup())
    if n.pool != 0 and not 3 <= n.pool <= distinct:  # (more: the same cells as pool = 0, without saying so)
        raise ConfigError(f"{where(cfg, 'nag', 'pool')}: 'nag' labels its cells by tertiles of {distinct:,} distinct "
                          f"cells; expected 0 (every one) or 3..{distinct:,}, got {n.pool:,}")
    if cfg.budget.stop > distinct:
        raise ConfigError(f"{where(cfg, 'budget', 'stop')}: RS-NAG queries distinct cells (as DAGs, NB201 has "
                          f"{distinct:,}); expected a budget <= {distinct:,}, got {cfg.budget.stop:,}")
    num_classes, _ = dataset_head(cfg)
    params = np.array([space.num_params(space.from_index(i), num_classes) for i in range(space.size)], np.float64)
    model = _nag_model(n)
    return cls(dag.NB201_DAG, dag.all_dags(), dag.dag_lookup(), label_acc, params, truth=truth,
               pool=n.pool, epochs=n.epochs, batch_size=n.batch_size, lr=n.lr, d_lr=n.d_lr, beta_1=n.beta_1,
               beta_2=n.beta_2, model=model, target=(n.target_acc, n.target_params), samples=n.samples,
               gen_batch=n.gen_batch,
               labels=n.labels, pretrain_epochs=n.pretrain_epochs, pretrain_schedule=n.pretrain_schedule,
               seed=cfg.run.seed,
               jit_compile=resolve_jit_compile(cfg.run.jit_compile))


@builds(NagSupernetSearch)
def nag_supernet(cls: type, cfg: Config, space: Any) -> NagSupernetSearch:
    import dataclasses

    from tfnas.methods.weight_sharing import ArrayPipelines, cached_supernet, load_split
    from tfnas.train.distribute import resolve_jit_compile

    _supernet_on_one_device(cfg)
    n, s, d, sp = cfg.nag, cfg.search, cfg.dataset, cfg.space
    if sp.name != "nasnet_dag":
        raise ConfigError(f"{where(cfg, 'space', 'name')}: method 'nag_supernet' searches the NASNet DAG space "
                          f"(nasnet_dag); got {sp.name!r} (NAG on NAS-Bench-201 is method 'nag')")
    if s.lr_min > s.lr:
        raise ConfigError(f"{where(cfg, 'search', 'lr_min')}: must not exceed lr ({s.lr}); got {s.lr_min}")
    if not 0.0 < n.holdout < 1.0:
        raise ConfigError(f"{where(cfg, 'nag', 'holdout')}: the supernet trains on part of the training split and "
                          f"scores on the rest, so it must lie strictly between 0 and 1; got {n.holdout}")
    if n.pool < 3:
        raise ConfigError(f"{where(cfg, 'nag', 'pool')}: 'nag_supernet' labels pool pairs by tertiles; expected >= 3, "
                          f"got {n.pool}")
    data = load_split(d.name, data_dir=d.data_dir, manual_dir=d.manual_dir, download=d.download,
                      subset=d.train_subset, where=where(cfg), first_fraction=1.0 - n.holdout, divisor=4,
                      who="the NASNet DAG supernet (two reductions)", image_size=d.image_size)
    _check_search_batch(cfg, data)
    # the supernet and RS-NAG's one-candidate trainings: XLA off unless asked; the GAN: on with a GPU
    info, jit = data[4], resolve_jit_compile(cfg.run.jit_compile, auto=False)
    batch = s.batch_size or d.batch_size
    aux = s.aux_weight if min(info.image_shape[:2]) >= 32 else 0.0

    def supernet(seed: int) -> Any:
        from tfnas.spaces.nasnet_dag.supernet import NasnetDagSupernet

        args = dict(channels=sp.search_channels, layers=sp.search_layers, momentum=s.momentum,
                    weight_decay=s.weight_decay, grad_clip=s.grad_clip, aux_weight=aux, jit_compile=jit, seed=seed)
        key = ("nasnet_dag", info.num_classes, tuple(info.image_shape), tuple(sorted(args.items())))
        return cached_supernet(key, lambda: NasnetDagSupernet(info.num_classes, tuple(info.image_shape), **args))

    rs_cfg = dataclasses.replace(cfg.train, epochs=n.rs_epochs, aux_weight=0.0)
    rs_pipes = ArrayPipelines(data, batch, cfg.run.seed, flip=rs_cfg.flip, pad_crop=rs_cfg.pad_crop,
                              cutout=rs_cfg.cutout)

    def rs_train(arch: Any) -> float:
        from tfnas.train.trainer import Trainer

        kwargs = dict(channels=sp.search_channels, layers=sp.search_layers, auxiliary=False)
        if rs_cfg.drop_path > 0:
            kwargs["drop_path_rate"] = 0.0
        trainer = Trainer(lambda: space.build(arch, info.num_classes, info.image_shape, **kwargs), rs_cfg,
                          jit_compile=jit, checkpoint_dir=None, progress=False, seed=cfg.run.seed)
        trainer.fit(rs_pipes.train(cfg.run.seed))
        return 100.0 * float(trainer.evaluate(rs_pipes.score())["accuracy"])

    model = _nag_model(n)
    gan = dict(lr=n.lr, d_lr=n.d_lr, beta_1=n.beta_1, beta_2=n.beta_2, batch_size=n.batch_size,
               jit_compile=resolve_jit_compile(cfg.run.jit_compile), pretrain_schedule=n.pretrain_schedule)
    return cls(space, data, supernet, rs_train, pool=n.pool, epochs=s.epochs, batch_size=batch,
               steps_per_epoch=s.steps_per_epoch, lr=s.lr, lr_min=s.lr_min, drop_path=s.drop_path,
               score_batches=n.score_batches, gan=gan, gan_epochs=n.epochs, pretrain_epochs=n.pretrain_epochs,
               model=model, target=(n.target_acc, n.target_params), samples=n.samples, gen_batch=n.gen_batch,
               rs_candidates=n.rs_candidates, flip=cfg.train.flip, pad_crop=cfg.train.pad_crop,
               cutout=cfg.train.cutout, rs_job=RsNagJob(cfg))


class RsNagJob(Job):
    """RS-NAG's short trainings on the workers (``[run] executor = process | ray``): a worker builds the
    method from the config once (its data split and training recipe, as in this process) and trains
    the arch strings it is handed, returning their held-out accuracies (%)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def build(self) -> Callable[[Any], Any]:
        from tfnas.run.factory import build_space

        space = build_space(self.cfg)
        method = nag_supernet(NagSupernetSearch, self.cfg, space)
        return lambda items: [float(method.rs_train(space.decode(text))) for text in items]
