"""Size-limited least-recently-used caches with hit and miss counts.

Every cache tfnas keeps for the life of a process (traced functions, traced networks) is an
:class:`LRUCache`, so a long search cannot grow one without bound. Each counts its hits,
misses and evictions; misses and evictions are logged at DEBUG level, and
:func:`cache_stats` reports every live cache (long searches log it at INFO, shown by ``-v``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Dict, Generic, Hashable, Iterator, Optional, Tuple, TypeVar

__all__ = ["LRUCache", "cache_stats", "format_cache_stats"]

logger = logging.getLogger(__name__)

V = TypeVar("V")
_LIVE: "weakref.WeakSet[LRUCache[Any]]" = weakref.WeakSet()
#: take / put of every cache: a lent entry goes to one thread only (one lock for all, so a cache
#: still pickles, e.g. inside a proxy sent to a worker process)
_LEND_LOCK = threading.Lock()


class LRUCache(Generic[V]):
    """A mapping of at most ``maxsize`` entries; the least recently used one is dropped first.

    Args:
        name: what the cache holds, for logs and :func:`cache_stats`.
        maxsize: the most entries kept (>= 1).

    Example:
        >>> cache = LRUCache("squares", maxsize=2)
        >>> [cache.get_or_create(k, lambda k=k: k * k) for k in (2, 3, 2, 4)]
        [4, 9, 4, 16]
        >>> (len(cache), cache.hits, cache.misses, cache.evictions, 3 in cache)
        (2, 1, 3, 1, False)
    """

    def __init__(self, name: str, maxsize: int):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"LRUCache {name!r}: maxsize must be an integer >= 1. Received: {maxsize!r}")
        self.name, self.maxsize = name, maxsize
        self.hits = self.misses = self.evictions = 0
        self._entries: "OrderedDict[Hashable, V]" = OrderedDict()
        _LIVE.add(self)

    def get_or_create(self, key: Hashable, create: Callable[[], V]) -> V:
        """The entry of ``key``, made by ``create()`` (and kept) on a miss."""
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self.misses += 1
        value = create()
        self._entries[key] = value
        logger.debug("cache %s: miss for %r (%d entries, %d hits, %d misses)", self.name, key,
                     len(self._entries), self.hits, self.misses)
        self._evict()
        return value

    def take(self, key: Hashable) -> Optional[V]:
        """Removes and returns the entry of ``key`` (a hit), or ``None`` (a miss).

        With :meth:`put`, the cache lends objects that one user at a time may change (a compiled
        trainer): take one, use it, put it back; a second user meanwhile finds none and makes its own.
        """
        with _LEND_LOCK:
            value = self._entries.pop(key, None)
            if value is None:
                self.misses += 1
                logger.debug("cache %s: miss for %r (%d entries, %d hits, %d misses)", self.name, key,
                             len(self._entries), self.hits, self.misses)
            else:
                self.hits += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Keeps ``value`` under ``key`` as the most recently used entry (replacing any)."""
        with _LEND_LOCK:
            self._entries.pop(key, None)
            self._entries[key] = value
            self._evict()

    @contextlib.contextmanager
    def lend(self, key: Hashable, create: Callable[[], V]) -> Iterator[V]:
        """Lends the entry of ``key`` (made by ``create()`` when none is idle) for the block, with
        :meth:`take` and :meth:`put`: nobody else gets it meanwhile, and it comes back when the block
        ends normally. After an error or Ctrl-C it is dropped: its state is unknown."""
        value = self.take(key)
        if value is None:
            value = create()
        yield value
        self.put(key, value)

    def _evict(self) -> None:
        while len(self._entries) > self.maxsize:
            old, _ = self._entries.popitem(last=False)
            self.evictions += 1
            logger.debug("cache %s: evicted %r (maxsize %d)", self.name, old, self.maxsize)

    def values(self) -> Iterator[V]:
        return iter(list(self._entries.values()))

    def items(self) -> Iterator[Tuple[Hashable, V]]:
        return iter(list(self._entries.items()))

    def clear(self) -> None:
        self._entries.clear()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> Dict[str, int]:
        """``{"entries", "maxsize", "hits", "misses", "evictions"}``."""
        return {"entries": len(self._entries), "maxsize": self.maxsize, "hits": self.hits, "misses": self.misses,
                "evictions": self.evictions}


def cache_stats() -> Dict[str, Dict[str, int]]:
    """:meth:`LRUCache.stats` of every live cache, by name (counts summed over same-named caches)."""
    out: Dict[str, Dict[str, int]] = {}
    for cache in list(_LIVE):
        stats = cache.stats()
        if cache.name in out:
            stats = {k: out[cache.name][k] + v for k, v in stats.items()}
        out[cache.name] = stats
    return dict(sorted(out.items()))


def format_cache_stats() -> str:
    """One line: ``name entries/maxsize (hits h, misses m, evictions e); ...``."""
    return "; ".join(f"{name} {s['entries']}/{s['maxsize']} (hits {s['hits']}, misses {s['misses']}, "
                     f"evictions {s['evictions']})" for name, s in cache_stats().items()) or "no caches"
