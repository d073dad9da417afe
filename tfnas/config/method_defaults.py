"""Defaults of shared keys that a method's paper sets otherwise.

``[search]`` (and the search network's ``[space]`` keys) serve several methods, so one default cannot
be every paper's: RelativeNAS searches with a population of 20 and batches of 256, SLNAS trains its
shared weights at lr 0.025 and NAG's supernet has 11 cells of 20 channels. A config file (or
``--set``) that does not set such a key gets the method's value below, not the section's; what the
config sets always wins, and the resolved values are written to the run's ``config.cfg``. Configs
built in Python (``Config(...)``) take the sections' defaults as written.
"""

from __future__ import annotations

from typing import Any, Container, Dict

#: method -> section -> key -> the value of the method's paper (``../specs``), where it differs from the
#: section's own default. The method's own sections (``[predictor]``, ``[controller]``, ``[nag]``) carry the
#: paper's values as their defaults already.
METHOD_DEFAULTS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "relativenas": {"search": {"population": 20, "batch_size": 256}},
    "slnas": {"search": {"batch_size": 96, "lr": 0.025, "lr_min": 0.0, "drop_path": 0.35}},
    "nag_supernet": {"search": {"batch_size": 128, "lr": 0.025, "drop_path": 0.0},
                     "space": {"search_channels": 20, "search_layers": 11}},
}


def method_defaults(method: str, section: str, given: Container[str]) -> Dict[str, Any]:
    """The keys of ``section`` that ``method`` sets by default, less those in ``given`` (set by the config)."""
    return {key: value for key, value in METHOD_DEFAULTS.get(method, {}).get(section, {}).items() if key not in given}
