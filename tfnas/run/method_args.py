"""One builder per method family: ``[method]``, ``[predictor]``, ``[search]``, ... -> keyword arguments.

A builder takes ``(method class, config, space)`` and returns the method; it is the only place
a method's configuration is read. ``BUILDERS`` maps a method class (or a base class) to its builder.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from tfnas.config import Config, ConfigError
from tfnas.methods.evolution import EvolutionSearch, Limits
from tfnas.methods.proxy_corr import NB201_DATASETS, ProxyCorrelation
from tfnas.methods.random_search import RandomSearch
from tfnas.methods.relativenas import RelativeNasSearch, load_halves
from tfnas.methods.siamese import PredictorSearch
from tfnas.registry import BENCHMARKS
from tfnas.run.factory import build_ec_factory, build_proxy, dataset_head, where

BUILDERS: Dict[type, Callable[[type, Config, Any], Any]] = {}


def builds(*classes: type) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        for cls in classes:
            BUILDERS[cls] = fn
        return fn

    return register


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
    return cls(space, siamese=siamese, nsam=p.nsam, bts=s.bts, units=p.units, epochs=p.epochs,
               batch_size=p.batch_size, lr=p.lr, lr_final=p.lr_final, huber_delta=p.huber_delta,
               init_fraction=s.init_fraction, update_split=s.update_split, sample_fraction=s.sample_fraction,
               rank_k=s.rank_k, final_rank_k=s.final_rank_k, reserve=s.reserve, ec_source=p.ec_source,
               ec_factory=ec_factory, jit_compile=jit, name=cfg.method.name)


@builds(EvolutionSearch)
def evolution(cls: type, cfg: Config, space: Any) -> EvolutionSearch:
    proxy = build_proxy(cfg.proxy.name, cfg)
    start = None
    if cfg.space.start:
        try:
            start = space.decode(cfg.space.start)
        except ValueError as exc:
            raise ConfigError(f"{where(cfg)}: [space] start: {exc}") from None
    s, b = cfg.search, cfg.budget
    limits = Limits(b.max_params, b.max_flops, b.max_layers, s.effectiveness_filter, s.max_rho)
    method = cls(space, proxy, proxy_name=cfg.proxy.name, population=s.population, iterations=s.iterations,
                 limits=limits, record_every=s.record_every, batch_size=cfg.proxy.batch_size, start=start)
    reason = method.reject_reason(method.start)
    if reason:
        raise ConfigError(f"{where(cfg)}: the start architecture already breaks the limits ({reason}); "
                          f"loosen [budget] or give a smaller [space] start")
    return method


@builds(RelativeNasSearch)
def relativenas(cls: type, cfg: Config, space: Any) -> RelativeNasSearch:
    from tfnas.train.distribute import resolve_jit_compile

    s, d = cfg.search, cfg.dataset
    if s.population % 2:
        raise ConfigError(f"{where(cfg)}: [search] population: RelativeNAS pairs its members, so it must be even; "
                          f"got {s.population}")
    if s.lr_min > s.lr:
        raise ConfigError(f"{where(cfg)}: [search] lr_min: must not exceed lr ({s.lr}); got {s.lr_min}")
    data = load_halves(d.name, data_dir=d.data_dir, manual_dir=d.manual_dir, download=d.download,
                       subset=d.train_subset, where=where(cfg))
    return cls(space, data, population=s.population, generations=s.generations,
               batch_size=s.batch_size or d.batch_size, steps_per_epoch=s.steps_per_epoch, lr=s.lr,
               lr_min=s.lr_min, momentum=s.momentum, weight_decay=s.weight_decay, grad_clip=s.grad_clip,
               drop_path=s.drop_path, cutout=cfg.train.cutout, flip=cfg.train.flip, pad_crop=cfg.train.pad_crop,
               jit_compile=resolve_jit_compile(cfg.run.jit_compile))


@builds(ProxyCorrelation)
def proxy_correlation(cls: type, cfg: Config, space: Any) -> ProxyCorrelation:
    if cfg.dataset.name not in NB201_DATASETS:
        raise ConfigError(f"{where(cfg)}: [dataset] name: proxy_corr compares with the NAS-Bench-201 table, which "
                          f"has {', '.join(NB201_DATASETS)}; got {cfg.dataset.name!r}")
    if cfg.benchmark.name == "none":
        raise ConfigError(f"{where(cfg)}: [benchmark] name: proxy_corr needs the NAS-Bench-201 table (nb201)")
    if getattr(space, "name", "") != getattr(BENCHMARKS.get(cfg.benchmark.name), "space", None):
        raise ConfigError(f"{where(cfg)}: [space] name: proxy_corr scores the cells of the {cfg.benchmark.name} "
                          f"table; got space {getattr(space, 'name', type(space).__name__)!r}")
    names = tuple(cfg.proxy.names) or (cfg.proxy.name,)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where(cfg)}: [proxy] names: {', '.join(duplicates)} listed more than once")
    proxies = {name: build_proxy(name, cfg, key="names") for name in names}
    benchmark = BENCHMARKS.get(cfg.benchmark.name)(source=cfg.benchmark.source)
    num_classes, shape = dataset_head(cfg)
    return cls(space, benchmark, proxies, dataset=cfg.dataset.name, num_classes=num_classes, input_shape=shape,
               batch_size=cfg.proxy.batch_size, subset=cfg.proxy.subset, seed=cfg.run.seed)
