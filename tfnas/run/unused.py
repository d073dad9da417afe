"""Config keys a run never reads, named in one warning before it starts (:func:`warn_unused_keys`).

A key set in the file or with ``--set`` that no part of the run reads was taken without a word, so a user
could believe it had an effect: another method's section (``[nag]`` in a ``rand`` sweep), a key of a
method's own section that only its sibling reads (``[nag] holdout`` in ``nag``), the other controller
kind's keys, the shared ``[search]`` keys of other methods (``population`` in a ``rand`` sweep), ``[dataset]``
keys of loading images where none are loaded (a sweep on a benchmark table), ``[budget]``'s range outside a
sweep, ``[proxy]`` keys where no proxy is built (or not the proxy that declares them), and ``[train]`` and
``[export]`` keys given with ``--set`` where nothing is trained.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Dict, List, Optional, Tuple

from tfnas.config import Config
from tfnas.registry import METHODS, PROXIES, SPACES
from tfnas.run.factory import where

logger = logging.getLogger(__name__)

#: Sections that only some methods read (their builders in tfnas.run.method_args): section -> those methods.
OWNED_SECTIONS = {"predictor": ("siamese", "predictor"), "brp": ("brp_nas",),
                  "controller": ("slnas", "slnas_controller"), "nag": ("nag", "nag_supernet")}

#: Keys of an owned section that only one of its methods reads: (section, key) -> that method.
OWNED_KEYS = {("nag", "labels"): "nag", ("nag", "holdout"): "nag_supernet", ("nag", "score_batches"): "nag_supernet",
              ("nag", "rs_candidates"): "nag_supernet", ("nag", "rs_epochs"): "nag_supernet",
              ("controller", "tanh_constant"): "slnas"}

#: ``[controller]`` keys that only one ``kind`` reads.
CONTROLLER_KINDS = {"ga": ("ga_population", "ga_crossover", "ga_mutation"),
                    "lstm": ("hidden", "lr", "optimizer", "entropy_weight", "baseline_decay", "temperature",
                             "tanh_constant", "op_tanh_constant")}


def changed_keys(section: Any) -> List[str]:
    """The keys of a section dataclass that differ from their defaults."""
    changed = []
    for f in dataclasses.fields(section):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        value = getattr(section, f.name)
        both_nan = isinstance(value, float) and isinstance(default, float) and math.isnan(value) and math.isnan(default)
        if value != default and not both_nan:
            changed.append(f.name)
    return changed


def _uses_code(cfg: Config) -> bool:
    """Whether the method is a siamese search, which reads ``[predictor] ec_source`` (its estimation code)."""
    return bool(getattr(METHODS.get(cfg.method.name), "uses_code", False)) if cfg.method.name in METHODS else False


def proxies_built(cfg: Config) -> Tuple[str, ...]:
    """The proxies this run builds: evolution's ``[proxy] name``, ``proxy_corr``'s names, a siamese
    search's estimation code when ``[predictor] ec_source`` names a proxy."""
    method, p = cfg.method.name, cfg.proxy
    if method == "evolution":
        return (p.name,)
    if method == "proxy_corr":
        return tuple(p.names) or (p.name,)
    if _uses_code(cfg) and cfg.predictor.ec_source not in ("table", "train"):
        return (cfg.predictor.ec_source,)
    return ()


def _options(name: str) -> Dict[str, str]:
    return dict(getattr(PROXIES.get(name), "options", {})) if name in PROXIES else {}


def _proxy_reader(cfg: Config, key: str, built: Tuple[str, ...]) -> Optional[str]:
    """Who would read ``[proxy] key``, or None when this run does."""
    method = cfg.method.name
    if key == "name":
        return None if method == "evolution" or (method == "proxy_corr" and not cfg.proxy.names) else \
            "methods evolution and proxy_corr (when [proxy] names is empty)"
    if key in ("names", "subset"):
        return None if method == "proxy_corr" else "method proxy_corr"
    if key == "batch_size":
        return None if built else "a run that builds a proxy"
    if any(key in _options(name) for name in built):
        return None
    declaring = [name for name in PROXIES.names() if key in _options(name)]
    return f"proxies {', '.join(declaring)}" if declaring else None


_BTS = ("bts", "init_fraction", "update_split", "sample_fraction", "rank_k", "final_rank_k", "reserve")
_ONE_SHOT = ("lr", "lr_min", "momentum", "weight_decay", "grad_clip", "drop_path", "batch_size", "steps_per_epoch")
#: The shared ``[search]`` keys each built-in method reads (its builder in tfnas.run.method_args); a method not
#: listed (a plugin) reads them all. Every run reads ``objective`` and ``max_latency_ms`` (:data:`SEARCH_ALWAYS`),
#: and every budgeted sweep of an open space ``pool_size`` (its pool, tfnas.run.sweep).
SEARCH_KEYS = {"rand": (), "predictor": tuple(k for k in _BTS if not k.endswith("rank_k")),  # (re-ranking by code)
               "siamese": _BTS, "brp_nas": (), "slnas_controller": (), "nag": (),
               "proxy_corr": (),
               "evolution": ("population", "iterations", "record_every", "effectiveness_filter", "max_rho", "batch",
                             "latency_threads", "latency_runs", "latency_warmup", "latency_quantize"),
               "relativenas": _ONE_SHOT + ("population", "generations"),
               "slnas": _ONE_SHOT + ("epochs", "controller_steps", "reward_fraction", "aux_weight", "pick_epochs"),
               "nag_supernet": _ONE_SHOT + ("epochs", "aux_weight")}
SEARCH_ALWAYS = ("objective", "max_latency_ms")  # refused (tfnas.run.constraints) where a method cannot honour them


def _search_reader(key: str) -> str:
    """Who reads ``[search] key``, for the warning."""
    if key == "pool_size":
        return "the budgeted searches (on an open space)"
    if key == "max_rho":
        return "method evolution with [search] effectiveness_filter = true"
    return f"methods {', '.join(sorted(m for m, keys in SEARCH_KEYS.items() if key in keys))}"


def _tabular(space: str) -> bool:
    """Whether the space named ``space`` holds all its cells (a sweep searches it, not a pool of ``pool_size``)."""
    from tfnas.spaces.base import TabularSpace

    try:
        return issubclass(SPACES.get(space), TabularSpace)
    except Exception:  # (a name the config check refuses)
        return False


def search_keys_never_read(cfg: Config, flow: str) -> List[str]:
    """The ``[search]`` keys this run never reads (none for a method :data:`SEARCH_KEYS` does not list)."""
    method = cfg.method.name
    if method not in SEARCH_KEYS:
        return []
    pooled = flow == "sweep" and not _tabular(cfg.space.name)  # the pool of an open space (tfnas.run.sweep)
    read = SEARCH_KEYS[method] + SEARCH_ALWAYS + (("pool_size",) if pooled else ())
    if method == "evolution" and not cfg.search.effectiveness_filter:
        read = tuple(k for k in read if k != "max_rho")  # the filter's limit
    return [f.name for f in dataclasses.fields(cfg.search) if f.name not in read]


#: The ``[space]`` keys each built-in space reads (tfnas.run.factory.build_space; the SLNAS search reads the lite
#: search network's); for a space not listed (a plugin) every key counts as read, as do ``name`` and ``arch``
#: (tools/train.py) everywhere and ``start`` in an evolution. A ``dropout`` other than 0 is refused off nasnet_dag.
SPACE_KEYS = {"nb201": ("channels", "cells_per_stage"), "tinynano": ("channels", "cells_per_stage"),
              "zen": ("start", "family", "kernel_weights"), "lite": ("channels", "blocks", "search_channels",
                                                                    "search_blocks"),
              "darts": ("channels", "layers", "search_channels", "search_layers"),
              "nasnet_dag": ("channels", "layers", "search_channels", "search_layers")}


def space_keys_never_read(cfg: Config) -> List[Tuple[str, str, str]]:
    """``(space, key, who reads it)`` of the ``[space]`` keys the configured space never reads."""
    read = SPACE_KEYS.get(cfg.space.name)
    if read is None:
        return []
    read += ("name", "arch", "dropout") + (("start",) if cfg.method.name == "evolution" else ())
    return [("space", key, f"spaces {', '.join(s for s, keys in SPACE_KEYS.items() if key in keys)}")
            for key in (f.name for f in dataclasses.fields(cfg.space)) if key not in read]


_AUGMENTATION = ("flip", "pad_crop", "cutout")  # what the weight-sharing searches' array pipelines take
#: ``[train]`` keys a one-shot search itself reads (its builder in tfnas.run.method_args), so part of its identity
#: (tfnas.run.search): the weight-sharing searches' augmentation, and nag_supernet's RS-NAG short trainings (a
#: Trainer on those pipelines, no checkpoints; their epochs and aux_weight come from [nag]).
SEARCH_TRAIN_KEYS = {"relativenas": _AUGMENTATION, "slnas": _AUGMENTATION,
                     "nag_supernet": _AUGMENTATION + ("optimizer", "lr", "momentum", "nesterov", "weight_decay",
                                                      "weight_decay_scope", "schedule", "warmup_epochs", "step_epochs",
                                                      "step_gamma", "lr_min", "grad_clip", "label_smoothing")}
_TRAIN_READERS = ("a search that trains its result, a training oracle ([benchmark] name = train), or (some "
                  "keys) a weight-sharing search")


def train_keys_read(cfg: Config, flow: str) -> Optional[Tuple[str, ...]]:
    """The ``[train]`` keys this run reads: None for all of them (it trains networks), else those few."""
    if flow == "search" and cfg.train.enabled:
        return None
    if flow == "search" and cfg.method.name in SEARCH_TRAIN_KEYS:
        return SEARCH_TRAIN_KEYS[cfg.method.name]
    if flow == "sweep" and cfg.benchmark.name == "train":
        return None
    if flow == "sweep" and _uses_code(cfg) and cfg.predictor.ec_source == "train":
        return ("flip", "pad_crop")  # the training estimation code's augmentation
    return ()


#: ``[dataset]`` keys read only where images are loaded (a run that trains, a weight-sharing search): the name and
#: ``image_size`` give every run its networks' classes and input shape (tfnas.run.factory.dataset_head).
_IMAGE_KEYS = ("data_dir", "manual_dir", "download", "train_subset", "eval_subset", "batch_size", "eval_batch_size")
_IMAGE_READERS = "a run that loads images (a training oracle, the training estimation code, a search)"


def loads_images(cfg: Config, flow: str) -> bool:
    """Whether this run may load images: not a sweep on a benchmark table without the training estimation code,
    nor an analysis (proxy_corr scores random inputs), nor an evolution that does not train its result; every
    other run is taken to (it may train)."""
    if flow == "analysis":
        return False
    if flow == "sweep":
        return cfg.benchmark.name == "train" or (_uses_code(cfg) and cfg.predictor.ec_source == "train")
    return cfg.method.name != "evolution" or cfg.train.enabled  # (proxies score random inputs; int8 latency too)


#: What ``tools/train.py`` (flow ``train``) never reads: it trains ``[space] arch`` on ``[dataset]`` with ``[train]``.
_NOT_TRAINED_BY = ("method", "budget", "search", "proxy", "predictor", "brp", "controller", "nag")


def never_read(cfg: Config, flow: str) -> List[Tuple[str, str, str]]:
    """``(section, key, who reads it)`` of every key, whatever its value, that this run never reads."""
    method, fields = cfg.method.name, lambda section: [f.name for f in dataclasses.fields(getattr(cfg, section))]
    if flow == "train":  # (the tinynano space's FLOPs limit is [budget] max_flops: kept, as are the other limits)
        return [(section, key, "the searches") for section in _NOT_TRAINED_BY for key in fields(section)
                if (section, key) not in (("budget", "max_flops"), ("budget", "max_params"))] + [
            (section, key, reader) for section, key, reader in space_keys_never_read(cfg) if key != "start"]
    keys = [(section, key, f"methods {', '.join(methods)}") for section, methods in OWNED_SECTIONS.items()
            if method not in methods for key in fields(section)]
    for section in ("nag", "controller"):
        if method in OWNED_SECTIONS[section]:
            for key in fields(section):
                owner = OWNED_KEYS.get((section, key))
                if owner is not None and owner != method:
                    keys.append((section, key, f"method {owner}"))
                elif section == "controller":
                    kind = next((k for k, names in CONTROLLER_KINDS.items() if key in names), cfg.controller.kind)
                    if kind != cfg.controller.kind:
                        keys.append((section, key, f"[controller] kind = {kind}"))
    keys += [("search", key, _search_reader(key)) for key in search_keys_never_read(cfg, flow)]
    keys += space_keys_never_read(cfg)
    if method == "predictor":  # the plain neural predictor: no estimation code, no siamese branch to attend
        keys += [("predictor", "nsam", "method siamese"), ("predictor", "ec_source", "method siamese")]
        keys += [("predictor", key, "method siamese with [predictor] ec_source = train")
                 for key in ("ec_epochs", "ec_subset")]
    elif method == "siamese" and cfg.predictor.ec_source != "train":
        keys += [("predictor", key, "[predictor] ec_source = train") for key in ("ec_epochs", "ec_subset")]
    from tfnas.run.constraints import constraint_requested

    if flow == "sweep" and cfg.space.name == "nb201" and cfg.benchmark.name == "nb201" and not (
            _uses_code(cfg) and cfg.predictor.ec_source != "table") and not constraint_requested(cfg):
        keys += [("space", key, "a sweep that builds networks (training oracle, trained or proxy codes), or reports "
                                "their params (hardware-aware)") for key in ("channels", "cells_per_stage")]
    if method in SEARCH_KEYS and flow != "sweep":  # (its limits: refused where not applied, tfnas.run.constraints)
        keys += [("budget", key, "the budgeted sweeps") for key in ("start", "stop", "step", "repeats")]
    if method in SEARCH_KEYS and not loads_images(cfg, flow):  # (a plugin method may read them)
        keys += [("dataset", key, _IMAGE_READERS) for key in _IMAGE_KEYS]
        if method != "nag":  # (its GAN steps; predictors and proxies have switches of their own)
            keys.append(("run", "jit_compile", f"{_IMAGE_READERS}, method nag"))
    built = proxies_built(cfg)
    keys += [("proxy", key, reader) for key in fields("proxy")
             for reader in [_proxy_reader(cfg, key, built)] if reader is not None]
    read = train_keys_read(cfg, flow)
    if read is not None:
        keys += [("train", key, _TRAIN_READERS) for key in fields("train") if key not in read]
    if flow != "search" or not cfg.train.enabled:
        keys += [("export", key, "a search that trains its result") for key in fields("export")]
    return keys


def tolerated(cfg: Config, flow: str) -> Tuple[Tuple[str, str], ...]:
    """The keys whose values a run directory of this run may hold otherwise (:class:`~tfnas.run.rundir.RunDir`'s
    ``tolerate``): those it never reads, which the unused-key warning calls without effect."""
    return tuple((section, key) for section, key, _ in never_read(cfg, flow))


def unused_keys(cfg: Config, flow: str) -> List[Tuple[str, str, str]]:
    """``(section, key, who reads it)`` of every key set (not at its default) that this run never reads;
    ``[train]`` and ``[export]`` keys, and a search's ``[dataset]`` keys and ``[run] jit_compile``, only when given
    with ``--set`` (a file may keep them for when it trains, or for tools/train.py)."""
    keys = never_read(cfg, flow)
    changed = {section: set(changed_keys(getattr(cfg, section))) for section in {s for s, _, _ in keys}}
    for_training = ("train", "export", "dataset", "run") if flow == "search" else ("train", "export")
    return [(section, key, reader) for section, key, reader in keys if key in changed[section]
            and (section not in for_training or f"{section}.{key}" in cfg.overrides)]


def warn_unused_keys(cfg: Config, flow: str) -> None:
    """One warning naming the keys set (in the file or by ``--set``) that this run never reads, and who
    reads each (:func:`unused_keys`). ``tools/train.py`` (flow ``train``) warns of those given with ``--set``
    and names the file's at ``-v`` only: a search's config file, its search sections and all, is what a
    user trains a found architecture with."""
    unused = unused_keys(cfg, flow)
    said = [(s, k, reader) for s, k, reader in unused if flow != "train" or f"{s}.{k}" in cfg.overrides]
    quiet = [key for key in unused if key not in said]
    what = "not used by method %r" % cfg.method.name if flow != "train" else "not used by a training"
    for level, keys in ((logging.WARNING, said), (logging.INFO, quiet)):
        if keys:
            file = f"{where(cfg)}: "  # (said once, at the start: "[proxy] grad_norm" for a key of the file)
            logger.log(level, "%s: %s, so without effect: %s", where(cfg), what,
                       "; ".join(f"{where(cfg, s, k).replace(file, '', 1)} (read by {reader})"
                                 for s, k, reader in keys))
