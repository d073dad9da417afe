"""Image folders for tests whose data must be readable by other processes (tfds mock data only
patches the test's own process): ``root/<split>/<class>/<i>.png`` with seeded random pixels."""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import tensorflow as tf


def write_image_folder(root, *, per_class: int, size: Tuple[int, int] = (16, 16),
                       classes: Sequence[str] = ("a", "b"), splits: Sequence[str] = ("train", "val"),
                       seed: int = 0):
    """Writes ``per_class`` PNG images of ``size`` (height, width) per class and split; returns ``root``."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 256, tuple(size) + (3,), dtype=np.uint8)
                (folder / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    return root
