"""Name -> factory registries for spaces, benchmarks, datasets, predictors, proxies and methods.

A registry fails loudly: registering a name twice raises, and a failed lookup lists the
known names (after importing the built-in modules, so every shipped entry is visible).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Iterator, List, TypeVar

T = TypeVar("T")

# Modules whose import registers the built-in entries of each registry.
_BUILTIN_MODULES: Dict[str, List[str]] = {
    "space": ["tfnas.spaces"],
    "benchmark": ["tfnas.benchmarks"],
    "dataset": ["tfnas.data"],
    "predictor": ["tfnas.predictors"],
    "proxy": ["tfnas.proxies"],
    "method": ["tfnas.methods"],
}


class UnknownNameError(KeyError):
    """Raised when a registry lookup names nothing registered."""

    def __init__(self, kind: str, name: str, known: List[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(name)

    def __str__(self) -> str:
        known = ", ".join(self.known) if self.known else "(none)"
        plural = self.kind[:-1] + "ies" if self.kind.endswith("y") else self.kind + "s"
        return f"unknown {self.kind} {self.name!r}; registered {plural}: {known}"


class Registry:
    """A name -> object mapping with a decorator for registration."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Any] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a duplicate name raises ``ValueError``."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered "
                    f"(by {getattr(self._entries[name], '__module__', '?')})"
                )
            self._entries[name] = obj
            return obj

        return decorator

    def _load_builtins(self) -> None:
        if self._loaded:
            return
        for module in _BUILTIN_MODULES.get(self.kind, []):
            importlib.import_module(module)  # a failing import raises here, every time, not "unknown name"
        self._loaded = True

    def get(self, name: str) -> Any:
        if name not in self._entries:
            self._load_builtins()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        self._load_builtins()
        return name in self._entries

    def names(self) -> List[str]:
        self._load_builtins()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


SPACES = Registry("space")
BENCHMARKS = Registry("benchmark")
DATASETS = Registry("dataset")
PREDICTORS = Registry("predictor")
PROXIES = Registry("proxy")
METHODS = Registry("method")

register_space = SPACES.register
register_benchmark = BENCHMARKS.register
register_dataset = DATASETS.register
register_predictor = PREDICTORS.register
register_proxy = PROXIES.register
register_method = METHODS.register
