"""tfnas.data: tfds and image-folder datasets -> tf.data pipelines; augmentation.

Importing this package registers the datasets ``cifar10``, ``cifar100``, ``imagenet16-120``,
``imagenet2012`` and ``image_folder``.
"""

from tfnas.data import augment
from tfnas.data.base import (
    DatasetFormatError,
    DatasetInfo,
    DatasetNotFoundError,
    DatasetSource,
)
from tfnas.data.folder import ImageFolderSource
from tfnas.data.pipeline import load_dataset, make_pipeline, normalize
from tfnas.data.tfds_source import TfdsSource

__all__ = [
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DatasetSource",
    "ImageFolderSource",
    "TfdsSource",
    "augment",
    "load_dataset",
    "make_pipeline",
    "normalize",
]
