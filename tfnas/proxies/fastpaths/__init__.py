"""Fast paths of the zero-shot proxies for particular spaces, registered by (proxy name, space type).

A fast path scores an architecture of one space without building the space's Keras network
(Zen blocks evaluated directly, NB201 cells through one traced arch-as-tensor network). It is a
function with the signature of :meth:`tfnas.proxies.base.Proxy.score_arch` plus the proxy::

    fn(proxy, space, arch, *, num_classes, input_shape, batch_size, rng) -> float

and is registered with :func:`register_fast_path`; :meth:`Proxy.score_arch` looks it up with
:func:`find_fast_path`, which walks ``type(space).__mro__``, so a subclass of a space inherits
the fast paths of its base. Only this subpackage knows concrete spaces; the proxy modules do not.
The built-in fast paths live in :mod:`tfnas.proxies.fastpaths.zen` and
:mod:`tfnas.proxies.fastpaths.nb201` (imported by ``tfnas/proxies/__init__.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

__all__ = ["FastPath", "find_fast_path", "register_fast_path", "registered_fast_paths"]

#: ``fn(proxy, space, arch, *, num_classes, input_shape, batch_size, rng) -> float``.
FastPath = Callable[..., float]
F = TypeVar("F", bound=Callable[..., float])


@dataclass(frozen=True)
class _Entry:
    fn: FastPath
    applies: Optional[Callable[[Any], bool]]


_FAST_PATHS: Dict[Tuple[str, type], _Entry] = {}


def register_fast_path(proxy_name: str, space_type: type,
                       applies: Optional[Callable[[Any], bool]] = None) -> Callable[[F], F]:
    """Decorator registering ``fn`` as the fast path of proxy ``proxy_name`` on ``space_type``.

    Args:
        proxy_name: the proxy's registry name (``Proxy.name``).
        space_type: the space class; instances of its subclasses use the fast path too.
        applies: optional ``applies(proxy) -> bool``; when it returns False for a proxy (an
            option the fast path does not cover) the lookup goes on as if nothing were registered.

    Raises:
        ValueError: when another function is already registered for ``(proxy_name, space_type)``.
    """
    if not isinstance(space_type, type):
        raise TypeError(f"register_fast_path: space_type must be a class; got {space_type!r}")

    def decorator(fn: F) -> F:
        key = (proxy_name, space_type)
        known = _FAST_PATHS.get(key)
        if known is not None and known.fn is not fn:
            raise ValueError(f"a fast path of proxy {proxy_name!r} on {space_type.__name__} is already registered "
                             f"(by {getattr(known.fn, '__module__', '?')})")
        _FAST_PATHS[key] = _Entry(fn, applies)
        return fn

    return decorator


def find_fast_path(proxy: Any, space: Any) -> Optional[FastPath]:
    """The fast path registered for ``proxy.name`` on the nearest class of ``type(space).__mro__``
    whose entry applies to ``proxy``; ``None`` when there is none (score the built network)."""
    name = getattr(proxy, "name", "")
    for cls in type(space).__mro__:
        entry = _FAST_PATHS.get((name, cls))
        if entry is not None and (entry.applies is None or entry.applies(proxy)):
            return entry.fn
    return None


def registered_fast_paths() -> List[Tuple[str, str]]:
    """``(proxy name, space class name)`` of every registered fast path, sorted."""
    return sorted((name, cls.__name__) for name, cls in _FAST_PATHS)
