"""The outputs of an exported SavedModel's serving signature, loaded in the test's own process.

A search's end-to-end test checks that the SavedModel it exported serves; that a SavedModel of
every space loads in a fresh Python *without* tfnas is checked once, in
``tests/train/test_export_inference.py`` (a second Python per search test cost a TensorFlow import).
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import tensorflow as tf


def serving_outputs(folder, batch_shape: Sequence[int]) -> List[np.ndarray]:
    """``serving_default``'s outputs on zeros of ``batch_shape``, in the signature's output order."""
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    return [t.numpy() for t in signature(tf.zeros(batch_shape)).values()]
