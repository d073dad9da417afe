"""Reads TensorBoard event files back for tests (``tf.compat.v1.train.summary_iterator``)."""

from __future__ import annotations

import glob
import os
from typing import Any, Dict, List, Tuple

import tensorflow as tf


def _creation_order(path: str) -> Tuple[int, int, str]:
    """``events.out.tfevents.<seconds>.<host>.<pid>.<counter>.v2`` -> (seconds, counter): plain name
    order puts counter 10 before 9 when two files are created in the same second."""
    parts = os.path.basename(path).split(".")
    try:
        return int(parts[3]), int(parts[-2]), path
    except (IndexError, ValueError):
        return 0, 0, path


def events(folder: str) -> List[Any]:
    """Every ``Event`` of the event files directly in ``folder``, files in creation order."""
    files = sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")), key=_creation_order)
    out = []
    for path in files:
        try:
            out.extend(tf.compat.v1.train.summary_iterator(path))
        except tf.errors.DataLossError:  # a torn last record (a killed writer): what came before it, as TensorBoard
            pass
    return out


def scalars(folder: str) -> Dict[str, List[Tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of the ``tf.summary.scalar`` points in ``folder``, in write order."""
    out: Dict[str, List[Tuple[int, float]]] = {}
    for event in events(folder):
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "scalars":
                out.setdefault(value.tag, []).append((int(event.step), float(tf.make_ndarray(value.tensor))))
    return out


def hparams_sessions(folder: str) -> List[Dict[str, Any]]:
    """The hparams-plugin sessions in ``folder``: one ``{name: value}`` dict each."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    sessions = []
    for event in events(folder):
        for value in event.summary.value:
            if value.tag == "_hparams_/session_start_info":
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                info = data.session_start_info
                sessions.append({k: (v.string_value if v.HasField("string_value") else
                                     v.bool_value if v.HasField("bool_value") else v.number_value)
                                 for k, v in info.hparams.items()})
    return sessions
