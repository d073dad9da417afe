"""Checks of a saved evolution state (``search_state/evolution.json``) that need the search's settings:
whose search it is, and whether its population is what its counters leave (:mod:`tfnas.methods.evolution`)."""

from __future__ import annotations

from typing import Any, Dict

from tfnas.io import DamagedFileError


def same_search(saved: Any, identity: Dict[str, Any], effectiveness_filter: bool) -> bool:
    """Whether ``saved``, a state's identity, is ``identity`` (JSON values). Without the effectiveness
    filter its ``max_rho`` (the last of ``limits``) is not read, so any saved value matches."""
    limits = saved.get("limits") if isinstance(saved, dict) else None
    if not effectiveness_filter and isinstance(limits, list) and len(limits) == len(identity["limits"]):
        saved = {**saved, "limits": limits[:-1] + identity["limits"][-1:]}
    return saved == identity


def check_population(path: str, state: Dict[str, Any], population: int, batch: int, restart: str) -> None:
    """The saved members must be what the saved counts leave: every child with a finite score joined, and the
    population was cut back to ``population`` before each batch of ``batch`` children joined (and, since
    2026-12-08, before each saved row: a state holds ``population`` members then)."""
    counts, size = state["counts"], len(state["members"])
    if "nonfinite" not in counts:  # written before they were counted: every finite score joined until it was full
        if size < population and size > counts["scored"]:
            raise DamagedFileError(path, f"'members' holds {size} architectures, more than its "
                                         f"{counts['scored']} scored children", restart)
        return
    finite = counts["scored"] - counts["nonfinite"]
    if finite < 0:
        raise DamagedFileError(path, f"'counts' has more non-finite scores ({counts['nonfinite']}) than scored "
                                     f"children ({counts['scored']})", restart)
    if finite <= population:
        expected, ok = f"{finite}", size == finite
    else:
        expected = f"{population} to {min(finite, population + batch)}"
        ok = population <= size <= min(finite, population + batch)
    if not ok:
        raise DamagedFileError(path, f"'members' holds {size} architectures where its {counts['scored']} scored "
                                     f"children ({counts['nonfinite']} non-finite) leave {expected}", restart)
