"""`.cfg` (INI) files -> frozen, typed dataclasses (:mod:`tfnas.config.sections`), validated before any work starts.

Order (as in TF Model Garden's ``parse_configuration``): dataclass defaults, then the
``.cfg`` file, then ``--set section.key=value`` overrides, then validation, then the
frozen :class:`Config`. Every error is a :class:`ConfigError` whose message names the
file, the section, the key and what was expected, e.g.::

    cfg/x.cfg: [budget] stop: expected an integer >= 1, got 'ten'

Each section is one dataclass; a field's ``metadata`` may carry ``choices`` (allowed
strings), ``min``/``max`` (inclusive range) or ``registry`` (a registry whose names the
value must be one of, e.g. ``method``). Empty strings mean "not set" for optional paths.
A comma-separated list with ``choices`` (e.g. ``[export] format = saved_model, tflite``)
takes one or more of them, each at most once.

A ``#`` or ``;`` after a space starts a comment, in a value too (``lr = 0.01  # paper``). A value
that holds one of them (a path such as ``/data/set #1``) is written as a JSON string in double
quotes: ``data_dir = "/data/set #1"``; ``config.cfg`` of a run directory quotes such values itself.
"""

from __future__ import annotations

import configparser
import dataclasses
import io
import json
import math
import os
import re
import typing
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from tfnas.checks import INT32_MAX, is_int, is_number
from tfnas.config.fields import ray_address_problem
from tfnas.config.method_defaults import method_defaults
from tfnas.config.sections import SECTIONS, Config, ConfigError


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _describe(f: dataclasses.Field, tp: Any) -> str:
    meta = f.metadata
    if "choices" in meta:
        if typing.get_origin(tp) is tuple:
            return "a comma-separated list of one or more of " + ", ".join(meta["choices"]) + " (each at most once)"
        return "one of " + ", ".join(meta["choices"])
    base = {int: "an integer", float: "a number", bool: "a boolean (true/false)", str: "a string"}.get(tp)
    if base is None and typing.get_origin(tp) is tuple:
        inner = typing.get_args(tp)[0]
        base = "a comma-separated list of " + {int: "integers", float: "numbers"}.get(inner, "names")
    lo, hi = meta.get("min"), meta.get("max")
    if "gt" in meta:  # an exclusive lower bound (a learning rate)
        base += f" > {meta['gt']}" + (f" and <= {hi}" if hi is not None else "")
    elif lo is not None and hi is not None:
        base += f" in [{lo}, {hi}]"
    elif lo is not None:
        base += f" >= {lo}"
    return base or str(tp)


def _int(text: str) -> int:
    """An integer written in ASCII digits (``int()`` also takes "1_000" and full-width digits)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(text)
    return int(text)


def _parse_value(raw: str, f: dataclasses.Field, tp: Any, where: str) -> Any:
    text = raw.strip()
    expected, why = _describe(f, tp), ""
    try:
        if tp is bool:
            low = text.lower()
            if low not in _TRUE | _FALSE:
                raise ValueError
            value: Any = low in _TRUE
        elif tp is int:
            value = _int(text)
        elif tp is float:
            if not text.isascii() or "_" in text:  # float() takes "1_0" and full-width digits
                raise ValueError
            value = float(text)
            if not math.isfinite(value):  # NaN, inf: no key means "unbounded" by infinity
                raise ValueError
        elif typing.get_origin(tp) is tuple:
            inner = typing.get_args(tp)[0]
            inner = _int if inner is int else inner
            items = [t.strip() for t in text.split(",")] if text else []
            value = tuple(inner(t) for t in items if t)
            if len(value) < len(items):  # "1,,2" or a trailing comma: a typo, not a shorter list
                why = " (an empty item)"
                raise ValueError(text)
        else:
            value = text
    except ValueError:
        raise ConfigError(f"{where}: expected {expected}, got {raw!r}{why}") from None
    meta = f.metadata
    if isinstance(value, str):
        _check_characters(value, where, multiline=meta.get("multiline", False))
        if meta.get("folder") or meta.get("path") or meta.get("home"):  # "~/data": no shell expands it in a file
            value = os.path.expanduser(value)
        if meta.get("folder"):  # "data/" is the folder "data": one identity for a run directory
            value = value.rstrip("/" + os.sep) or value[:1]
    if "choices" in meta and isinstance(value, tuple):
        _check_choice_list(value, meta["choices"], where, expected, raw)
    elif "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{where}: expected {expected}, got {raw!r}")
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if is_number(v):
            if ("min" in meta and v < meta["min"]) or ("max" in meta and v > meta["max"]) or (
                    "gt" in meta and v <= meta["gt"]):
                raise ConfigError(f"{where}: expected {expected}, got {raw!r}")
            if isinstance(v, int) and "max" not in meta and abs(v) > INT32_MAX:  # TensorFlow's shapes and seeds
                raise ConfigError(f"{where}: expected {expected} and at most {INT32_MAX} (32 bits), got {raw!r}")
    return value


def _check_characters(value: str, where: str, multiline: bool) -> None:
    """No control characters; a line break only in a key that may span lines (an architecture)."""
    control = next((c for c in value if (c != "\n" or not multiline) and not c.isprintable()), None)
    if control == "\n":
        raise ConfigError(f"{where}: holds a line break (a value continued on an indented next line?); only "
                          f"[space] arch and start may span lines")
    if control is not None:  # "C:\temp" in double quotes is a tab: JSON escapes
        raise ConfigError(f"{where}: holds the control character {control!r}; in a value in double quotes "
                          f"a backslash starts an escape (\\t, \\n): write \\\\ or /")


def _check_choice_list(value: Tuple[str, ...], choices: Sequence[str], where: str, expected: str, raw: str) -> None:
    """A list of ``choices``: not empty, every item known, none repeated."""
    unknown = [v for v in value if v not in choices]
    repeated = sorted({v for v in value if value.count(v) > 1})
    if not value:
        why = "nothing given"
    elif unknown:
        why = "unknown " + ", ".join(repr(v) for v in unknown)
    elif repeated:
        why = "repeated " + ", ".join(repr(v) for v in repeated)
    else:
        return
    raise ConfigError(f"{where}: expected {expected}, got {raw!r} ({why})")


def _section_types(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


_COMMENT = re.compile(r"(^|\s)[#;]")


#: A section line with a comment after it (``[run]  # the seed``); configparser's own takes the comment in.
_SECTION = re.compile(r"\[(?P<header>[^]]+)\]\s*(?:[#;].*)?$")


def _needs_quotes(text: str) -> bool:
    return bool(_COMMENT.search(text) or text.startswith('"') or text != text.strip() or not text.isprintable())


def ini_value(text: str, where: str = "") -> str:
    """The value of an INI line's text: a JSON string in double quotes as its content (a comment may
    follow it), otherwise the text before a ``#`` or ``;`` that follows a space (a comment), stripped.
    Each line of a multi-line value is read so.

    Raises:
        ConfigError: a quoted value that is not a JSON string, or with more than a comment after it.
    """
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith('"'):
            try:
                value, end = json.JSONDecoder().raw_decode(line)
            except ValueError as exc:
                raise ConfigError(f"{where}: a value in double quotes must be a JSON string "
                                  f"(\\\" for a quote, \\\\ for a backslash): {exc.msg} (column "
                                  f"{getattr(exc, 'colno', 0)} of {line!r})") from None
            rest = line[end:]
            if rest.strip() and not re.match(r"\s+[#;]", rest):
                raise ConfigError(f"{where}: expected nothing but a # comment (after a space) after the quoted "
                                  f"value; got {rest.strip()!r}")
            lines.append(value)
        else:
            match = _COMMENT.search(line)
            lines.append((line[:match.start()] if match else line).strip())
    return "\n".join(lines).strip("\n") if len(lines) > 1 else lines[0]


def _parse_overrides(overrides: Iterable[str]) -> List[Tuple[str, str, str]]:
    out = []
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        lhs, value = item.split("=", 1)
        section, key = lhs.strip().split(".", 1)
        out.append((section.strip(), key.strip(), value))
    return out


def load_config(path: Optional[str], overrides: Sequence[str] = (), check_names: bool = True) -> Config:
    """Reads ``path`` (INI), applies ``--set`` overrides, validates and returns a frozen Config.

    ``overrides`` is a list of ``"section.key=value"`` strings (as ``--set`` takes them).

    Raises:
      ConfigError: for a missing file, unknown section or key, wrong type, out-of-range value,
        unknown registered name or inconsistent values; the message names file, section and key.
    """
    overrides = _override_list(overrides)
    label = path or "<defaults>"
    raw = _read_file(path) if path is not None else {}
    for section, key, value in _parse_overrides(overrides):
        raw.setdefault(section, {})[key] = (value, f"--set {section}.{key}")
    if path and not raw:  # every setting at its default: the wrong file, not a wish for the default experiment
        raise ConfigError(f"{path}: sets no key (empty, or only comments and empty sections); a config "
                          f"names at least its method, e.g. [method] name = rand (see cfg/)")
    given = tuple(f"{section}.{key}" for section, items in raw.items() for key, (_, origin) in items.items()
                  if origin.startswith("--set"))
    return _build(raw, path or "", given, label, check_names)


def validate_config(cfg: Config, check_names: bool = True) -> None:
    """Checks a :class:`Config` built or changed in Python (``Config.replace``, the section classes) as
    :func:`load_config` checks a file: types, ranges, choices, registered names and the rules that tie keys
    together. The run flows call it first, so a value a file could not hold is refused before any work.

    Raises:
      ConfigError: naming the section and key, e.g. ``Config (as given in Python): [budget] stop: ...``.
    """
    if not isinstance(cfg, Config):
        raise ConfigError(f"expected a tfnas.config.Config (load_config builds one), got {type(cfg).__name__}")
    label = f"{cfg.source or 'Config'} (as given in Python)"
    for section, cls in SECTIONS.items():
        values = getattr(cfg, section)
        if not isinstance(values, cls):
            raise ConfigError(f"{label}: [{section}]: expected a {cls.__name__}, got {type(values).__name__}")
        types = _section_types(cls)
        for f in dataclasses.fields(cls):
            value = getattr(values, f.name)
            if not _of_type(value, types[f.name]):
                raise ConfigError(f"{label}: [{section}] {f.name}: expected {_describe(f, types[f.name])}, got "
                                  f"{value!r} ({type(value).__name__})")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(config_to_ini(cfg))
    _build(_raw_values(parser, label), cfg.source, cfg.overrides, label, check_names)


def _override_list(overrides: Any) -> List[str]:
    expected = "overrides: expected a list of 'section.key=value' strings"
    if overrides is None:
        return []
    if isinstance(overrides, (str, bytes, dict)):
        raise ConfigError(f"{expected}, got a {type(overrides).__name__}: {overrides!r}")
    try:
        items = list(overrides)
    except TypeError:
        raise ConfigError(f"{expected}, got {overrides!r}") from None
    odd = [item for item in items if not isinstance(item, str)]
    if odd:
        raise ConfigError(f"{expected}, got {odd[0]!r} ({type(odd[0]).__name__}) among them")
    return items


def _of_type(value: Any, tp: Any) -> bool:
    if typing.get_origin(tp) is tuple:
        inner = typing.get_args(tp)[0]
        return isinstance(value, tuple) and all(_of_type(item, inner) for item in value)
    if tp is float:
        return is_number(value)
    if tp is int:
        return is_int(value)  # (NumPy integers too, as everywhere else)
    return isinstance(value, tp) if isinstance(tp, type) else True


def _read_file(path: str) -> Dict[str, Dict[str, Tuple[str, str]]]:
    """The file's ``{section: {key: (value, where)}}``."""
    if not path.strip():
        raise ConfigError(f"the config file name is empty ({path!r}); expected a .cfg file (see cfg/)")
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a folder; expected a .cfg file (see cfg/)")
    if not os.path.exists(path):
        if os.path.islink(path):
            raise ConfigError(f"{path}: a symbolic link that leads to no file (its target is missing, or the "
                              f"links form a loop)")
        raise ConfigError(f"{path}: config file not found")
    if not os.path.isfile(path):  # a pipe (`<(sed ...)`) reads once; the command line reads a config twice
        raise ConfigError(f"{path}: not a regular file (a pipe such as <(...) or a device); a config is read "
                          f"more than once and names the run directory: save it to a .cfg file")
    parser = configparser.ConfigParser(interpolation=None)  # inline comments: ini_value
    parser.SECTCRE = _SECTION
    parser.optionxform = str  # keys are case sensitive
    try:
        with open(path, encoding="utf-8-sig") as fh:  # a byte-order mark (Windows editors) is not text
            parser.read_file(fh, source=path)
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a valid INI file: {exc}".replace("\n", " ")) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    if parser.defaults():  # configparser would copy them into every section: "unknown key" everywhere
        raise ConfigError(f"{path}: [DEFAULT] sets {', '.join(sorted(parser.defaults()))}; tfnas configs have "
                          f"no [DEFAULT] section: put each key under its own section")
    return _raw_values(parser, path)


def _raw_values(parser: configparser.ConfigParser, label: str) -> Dict[str, Dict[str, Tuple[str, str]]]:
    """``{section: {key: (value, where)}}`` of a parsed INI text, each value unquoted (:func:`ini_value`)."""
    raw: Dict[str, Dict[str, Tuple[str, str]]] = {}
    for section in parser.sections():
        for key, value in parser.items(section):
            where = f"{label}: [{section}] {key}"
            raw.setdefault(section, {})[key] = (ini_value(value, where), where)
    return raw


def _build(raw: Dict[str, Dict[str, Tuple[str, str]]], source: str, given: Tuple[str, ...], label: str,
           check_names: bool) -> Config:
    sections: Dict[str, Any] = {}
    for section, items in raw.items():
        if section not in SECTIONS:
            where = next(iter(items.values()))[1]
            if not where.startswith("--set"):
                where = where.rsplit(" ", 1)[0]  # the whole section is unknown, not its first key
            raise ConfigError(f"{where}: unknown section [{section}]; valid sections: {', '.join(SECTIONS)}")
    for section, cls in SECTIONS.items():
        types = _section_types(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: Dict[str, Any] = {}
        for key, (value, where) in raw.get(section, {}).items():
            if key not in fields:
                raise ConfigError(f"{where}: unknown key; valid keys in [{section}]: {', '.join(fields)}")
            kwargs[key] = _parse_value(value, fields[key], types[key], where)
        sections[section] = cls(**kwargs)
    for section, values in sections.items():  # keys a config leaves unset take its method's paper value
        sections[section] = dataclasses.replace(values, **method_defaults(sections["method"].name, section,
                                                                          raw.get(section, {})))
    cfg = Config(source=source, overrides=given, **sections)
    _validate(cfg, raw, label, check_names)
    return cfg


def _where(raw: Dict[str, Dict[str, Tuple[str, str]]], label: str, section: str, key: str) -> str:
    if key in raw.get(section, {}):
        return raw[section][key][1]
    return f"{label}: [{section}] {key}"


def _validate(cfg: Config, raw: Dict[str, Dict[str, Tuple[str, str]]], label: str, check_names: bool) -> None:
    from tfnas import registry

    registries = {
        "method": registry.METHODS,
        "space": registry.SPACES,
        "dataset": registry.DATASETS,
        "benchmark": registry.BENCHMARKS,
        "proxy": registry.PROXIES,
    }
    for section, cls in SECTIONS.items():
        values = getattr(cfg, section)
        for f in dataclasses.fields(cls):
            where = _where(raw, label, section, f.name)
            value = getattr(values, f.name)
            if check_names and "registry" in f.metadata:
                reg = registries[f.metadata["registry"]]
                allowed = f.metadata.get("allow", ())
                for item in value if isinstance(value, tuple) else (value,):
                    if item not in allowed and item not in reg:
                        known = ", ".join(reg.names() + list(allowed))
                        plural = reg.kind[:-1] + "ies" if reg.kind.endswith("y") else reg.kind + "s"
                        raise ConfigError(f"{where}: unknown {reg.kind} {item!r}; registered {plural}: {known}")
            if f.metadata.get("path") and value and not os.path.exists(value):
                raise ConfigError(f"{where}: file not found: {value!r}")
    problem = ray_address_problem(cfg.run.ray_address) if cfg.run.executor == "ray" else ""
    if problem:
        raise ConfigError(f"{_where(raw, label, 'run', 'ray_address')}: {problem}")
    t = cfg.train
    if check_names:  # not for a run directory's own config.cfg, written before these checks existed
        if cfg.proxy.subset == 1 and cfg.method.name == "proxy_corr":  # one cell has no rank correlation (NaN)
            raise ConfigError(f"{_where(raw, label, 'proxy', 'subset')}: expected 0 (all cells) or at least 2 cells "
                              f"to correlate, got 1")
        if t.lr_min > t.lr and t.schedule == "cosine":  # the "decay" would rise
            raise ConfigError(f"{_where(raw, label, 'train', 'lr_min')}: must not exceed [train] lr ({t.lr}); "
                              f"got {t.lr_min}")
        # a step at or after the last epoch never happens, one given twice multiplies twice: most likely typos
        never = ", ".join(map(str, sorted({e for e in t.step_epochs if e >= t.epochs or t.step_epochs.count(e) > 1})))
        if never and t.schedule == "step":
            raise ConfigError(f"{_where(raw, label, 'train', 'step_epochs')}: expected distinct epochs below [train] "
                              f"epochs = {t.epochs} (a step there never happens, twice multiplies twice), got {never}")
    if t.warmup_epochs > t.epochs:
        raise ConfigError(f"{_where(raw, label, 'train', 'warmup_epochs')}: expected at most [train] epochs = "
                          f"{t.epochs}, got {t.warmup_epochs}")
    b = cfg.budget
    if b.stop < b.start:
        raise ConfigError(f"{_where(raw, label, 'budget', 'stop')}: expected stop >= start ({b.start}), got {b.stop}")
    _validate_export(cfg, raw, label, check_names)
    ec = cfg.predictor.ec_source
    if check_names and ec not in ("table", "train") and ec not in registry.PROXIES:
        known = ", ".join(["table", "train"] + registry.PROXIES.names())
        raise ConfigError(
            f"{_where(raw, label, 'predictor', 'ec_source')}: expected table, train or a registered proxy, "
            f"got {ec!r}; available: {known}"
        )


def _validate_export(cfg: Config, raw: Dict[str, Dict[str, Tuple[str, str]]], label: str, check_names: bool) -> None:
    """``[export]``: quantization needs tflite, calibration needs int8 and a dataset or folder."""
    e = cfg.export
    if e.quantize != "none" and "tflite" not in e.format:
        raise ConfigError(f"{_where(raw, label, 'export', 'quantize')}: quantization applies to the tflite format "
                          f"only; got quantize = {e.quantize} with format = {', '.join(e.format)} (add tflite to "
                          f"[export] format, or set quantize = none)")
    if e.calibration and e.quantize != "int8":
        raise ConfigError(f"{_where(raw, label, 'export', 'calibration')}: a calibration source is used by int8 "
                          f"quantization only; got quantize = {e.quantize}")
    if not (check_names and e.calibration):  # the registry loads TensorFlow: only when names are checked
        return
    from tfnas.train.calibration import check_calibration_source

    try:
        check_calibration_source(e.calibration)
    except ValueError as exc:
        raise ConfigError(f"{_where(raw, label, 'export', 'calibration')}: {exc}") from None


def config_to_ini(cfg: Config) -> str:
    """The resolved config as INI text (every key, defaults included); loads back to an equal Config."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    for section in SECTIONS:
        values = getattr(cfg, section)
        parser[section] = {}
        for f in dataclasses.fields(values):
            v = getattr(values, f.name)
            if isinstance(v, bool):
                text = "true" if v else "false"
            elif isinstance(v, tuple):
                text = ", ".join(str(x) for x in v)
            else:
                text = str(v)
            parser[section][f.name] = json.dumps(text, ensure_ascii=False) if _needs_quotes(text) else text
    buf = io.StringIO()
    source = cfg.source or "<defaults>"  # (a line break in the path would end the comment line)
    buf.write(f"# resolved from {json.dumps(source, ensure_ascii=False) if _needs_quotes(source) else source}\n")
    parser.write(buf)
    return buf.getvalue()
