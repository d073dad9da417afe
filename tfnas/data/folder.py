"""``image_folder``: images laid out as ``root/train/<class>/*`` and ``root/val/<class>/*``.

Class ids are the positions of the class folder names of ``root/train`` in sorted order, so
``val`` uses the same mapping (a class folder in ``val`` that ``train`` lacks is an error).
JPEG and PNG files are read (``.jpg``, ``.jpeg``, ``.png``, any case), listed in sorted order per
class and then served in one fixed shuffled order (a permutation drawn with seed 0, the same on
every machine and in every run, as tfds stores CIFAR in one fixed shuffled order), so that the
first ``N`` images (``[dataset] train_subset``, the weight-sharing searches' weights / score
split) mix the classes, each in about its share (a random draw: not exactly, for a small ``N``),
instead of holding the first classes only. Adding or removing a file reorders the whole split.
They are decoded with ``tf.io.decode_image`` to 3-channel uint8 (grey images are expanded,
alpha dropped). With ``image_size=0`` every image is brought to the size of the first training
image in sorted order (aspect-preserving resize to cover it, then a centre crop); images that
already have that size pass unchanged.

A file that is not an image, or an image whose body is damaged (truncated, garbled), is named in
the error (:func:`not_an_image`, :func:`damaged_image`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfnas.data.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetFormatError,
    DatasetInfo,
    DatasetNotFoundError,
    DatasetSource,
    check_download,
    check_split,
    resize_and_crop,
)
from tfnas.registry import register_dataset
from tfnas.runtime import quiet_stderr

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
logger = logging.getLogger(__name__)

SPLIT_DIRS = {"train": "train", "eval": "val"}


def _subdirs(path: str) -> List[str]:
    return sorted(d.rstrip("/") for d in tf.io.gfile.listdir(path) if tf.io.gfile.isdir(os.path.join(path, d)))


def _first_not_a_file(folder: str, names: Sequence[str]) -> Optional[str]:
    """The first of ``names`` in a local ``folder`` that is not a regular file (links followed), or
    ``None``; a remote folder (``gs://``...) is not checked (one request per file)."""
    if "://" in folder:
        return None
    with os.scandir(folder) as entries:  # the entry types come with the listing: no stat per plain file
        is_file = {e.name: e.is_file() for e in entries}
    return next((os.path.join(folder, n) for n in names if not is_file.get(n, False)), None)


def list_image_folder(root: str, split: str) -> Tuple[List[str], List[int], Tuple[str, ...]]:
    """Lists one split of an image folder.

    Args:
      root: the folder holding ``train/`` and ``val/``.
      split: ``"train"`` or ``"eval"`` (read from ``val/``).

    Returns:
      ``(paths, labels, class_names)``: files sorted by class then name; labels index
      ``class_names``, the sorted folder names of ``root/train``.

    Raises:
      DatasetNotFoundError: ``root`` or the split folder does not exist.
      DatasetFormatError: no class folders, a class without images, or a ``val`` class
        that ``train`` lacks.
    """
    check_split(split)
    if not root:
        raise DatasetNotFoundError(
            "image_folder: [dataset] data_dir is empty; set it to the folder that holds "
            "train/<class>/*.jpg|png and val/<class>/*.jpg|png."
        )
    train_dir = os.path.join(root, SPLIT_DIRS["train"])
    split_dir = os.path.join(root, SPLIT_DIRS[split])
    for needed in (train_dir, split_dir):
        if not tf.io.gfile.isdir(needed):
            raise DatasetNotFoundError(
                f"image_folder: {needed} does not exist; [dataset] data_dir = {root} must hold "
                f"train/<class>/*.jpg|png and val/<class>/*.jpg|png."
            )
    class_names = tuple(_subdirs(train_dir))
    if not class_names:
        raise DatasetFormatError(f"image_folder: {train_dir} has no class folders (train/<class>/*).")
    index = {name: i for i, name in enumerate(class_names)}
    paths: List[str] = []
    labels: List[int] = []
    for name in _subdirs(split_dir):
        if name not in index:
            raise DatasetFormatError(
                f"image_folder: class folder {os.path.join(split_dir, name)} has no counterpart in "
                f"{train_dir}; the classes are: {', '.join(class_names)}."
            )
        class_dir = os.path.join(split_dir, name)
        files = sorted(f for f in tf.io.gfile.listdir(class_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise DatasetFormatError(
                f"image_folder: {class_dir} holds no {'/'.join(IMAGE_EXTENSIONS)} files."
            )
        not_file = _first_not_a_file(class_dir, files)
        if not_file:
            raise DatasetFormatError(f"image_folder: {not_file} is named like an image but is not a readable file "
                                     f"(a folder, or a link to nothing); delete or rename it.")
        paths.extend(os.path.join(class_dir, f) for f in files)
        labels.extend([index[name]] * len(files))
    if not paths:
        raise DatasetFormatError(f"image_folder: {split_dir} has no class folders with images.")
    return paths, labels, class_names


#: Seed of the one fixed order in which a split's files are served (module docstring), and its name
#: in what records which data a run used (training caches, a search's state): until 2026-12-06 the
#: files were served class by class, so a record without it was made on other splits.
FILE_ORDER_SEED = 0
FILE_ORDER = f"shuffled-seed-{FILE_ORDER_SEED}"

#: Start of the error a file that is not a JPEG/PNG image raises when the pipeline reaches it
#: (``tf.errors.InvalidArgumentError``; the command line reports it as one line with the file).
NOT_AN_IMAGE = "image_folder: not an image file (delete or replace it):"

#: Start of the message that names an image file whose body the decoder rejects (a truncated or
#: garbled PNG/JPEG/GIF/BMP); the decoder's own error names no file (:func:`damaged_image`).
DAMAGED_IMAGE = "image_folder: damaged image file (delete or replace it):"

# the signatures tf.io.decode_image knows: PNG, JPEG, GIF, BMP
_SIGNATURES = ((8, b"\x89PNG\r\n\x1a\n"), (3, b"\xff\xd8\xff"), (4, b"GIF8"), (2, b"BM"))


def _jpeg_is_complete(contents: tf.Tensor) -> tf.Tensor:
    """False for a JPEG with no end-of-image marker (FF D9) anywhere: a truncated file. TensorFlow's
    decoder rejects it too, but only after libjpeg has printed "Premature end of JPEG data" (or
    "Improper call to JPEG library") on stderr. Entropy-coded data escapes every FF byte (FF 00), so
    FF D9 is a marker wherever it stands; most files end with it, and only the others are searched."""
    def ends_elsewhere() -> tf.Tensor:
        data = tf.io.decode_raw(contents, tf.uint8)
        return tf.reduce_any(tf.logical_and(tf.equal(data[:-1], 0xFF), tf.equal(data[1:], 0xD9)))

    return tf.cond(tf.equal(tf.strings.substr(contents, -2, 2), b"\xff\xd9"), lambda: tf.constant(True),
                   ends_elsewhere)


def decode_image_file(path: tf.Tensor) -> tf.Tensor:
    """Reads and decodes one JPEG/PNG file to uint8 ``[H, W, 3]`` (shape known at run time).

    A file that starts with no image signature fails with :data:`NOT_AN_IMAGE` and its path (the
    decoder's own error names no file); :func:`not_an_image` reads the path back from the error.
    A truncated JPEG fails with :data:`DAMAGED_IMAGE` and its path before it reaches the decoder
    (:func:`_jpeg_is_complete`), which would print libjpeg's complaint on the console first."""
    contents = tf.io.read_file(path)
    known = tf.reduce_any(tf.stack([tf.equal(tf.strings.substr(contents, 0, n), sig) for n, sig in _SIGNATURES]))
    check = tf.debugging.Assert(known, [NOT_AN_IMAGE, path])
    with tf.control_dependencies([check]):
        is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), _SIGNATURES[1][1])
        complete = tf.cond(is_jpeg, lambda: _jpeg_is_complete(contents), lambda: tf.constant(True))
        check = tf.debugging.Assert(complete, [DAMAGED_IMAGE, path])
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.ensure_shape(image, (None, None, 3))


def not_an_image(exc: BaseException) -> Optional[str]:
    """The path in the error :func:`decode_image_file` raised for a file that is not an image, as
    ``"<NOT_AN_IMAGE> <path>"``; None for any other error."""
    return _named_in(exc, NOT_AN_IMAGE)


def _named_in(exc: BaseException, start: str) -> Optional[str]:
    """``"<start> <path>"`` from the error of a failed ``tf.debugging.Assert(..., [start, path])``
    of :func:`decode_image_file`; None when the error holds no such message."""
    message = str(getattr(exc, "message", "") or exc)
    at = message.find(start)
    if at < 0:
        return None
    rest = message[at + len(start):]
    # graph mode: "...:] [<path>]\n\t [[{{node ...", eager mode: "...:'\nb'<path>'"
    found = re.match(r"\]?\s*\[(.*)\]\s*$", rest.splitlines()[0]) if rest.splitlines() else None
    if found is None:
        found = re.match(r"'?\s*b'(.*)'\s*$", rest.strip().splitlines()[-1] if rest.strip() else "")
    if found:
        path = found.group(1).replace("\\'", "'")
    else:  # already in this function's own form
        path = rest.strip().splitlines()[0] if rest.strip() else "(the path was not given)"
    return f"{start} {path}"


# The decode op's errors in TF 2.21: eagerly "{{function_node __wrapped__DecodeImage_...}} Invalid PNG data, size 134
# [Op:DecodeImage]", inside tf.data "Error in user-defined function passed to ...: Invalid PNG data, size 134\n\t
# [[{{node decode_image/DecodeImage}}]] [Op:IteratorGetNext]".
_DECODERS = "Decode(Image|Png|Jpeg|Gif|Bmp)"
_DECODE_OP = re.compile(rf"\[Op:{_DECODERS}\]|\{{\{{node ([^{{}}\s]*/)?{_DECODERS}\}}\}}")
# ... and the decoders' messages, for an error that reaches us without the op's name
_DECODE_MESSAGES = (DAMAGED_IMAGE, "Invalid PNG", "jpeg::Uncompress failed", "Invalid JPEG data", "Invalid GIF data",
                    "Input size should match (header_size", "Number of channels inherent in the image")

# (root, split) of the image folders load() opened in this process, oldest first; bounded, as the
# folders are only listed and decoded again once a pipeline fails to decode an image
_OPENED: "OrderedDict[Tuple[str, str], None]" = OrderedDict()
_MAX_OPENED = 8
_OPENED_LOCK = threading.Lock()


def _remember(root: str, split: str) -> None:
    with _OPENED_LOCK:
        _OPENED.pop((root, split), None)
        _OPENED[(root, split)] = None
        while len(_OPENED) > _MAX_OPENED:
            _OPENED.popitem(last=False)


def is_decode_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the error TensorFlow's image decoder raises for data it cannot decode."""
    if not isinstance(exc, tf.errors.InvalidArgumentError):
        return False
    message = str(getattr(exc, "message", "") or exc)
    return bool(_DECODE_OP.search(message)) or any(m in message for m in _DECODE_MESSAGES)


def find_damaged_images(paths: Sequence[str]) -> List[str]:
    """The files of ``paths`` that :func:`decode_image_file` cannot read or decode, in the order given.

    Decodes every file (in parallel, with tf.data), so it is meant for after a decode error, not
    for every run; the decoders' messages about each bad file are kept off the console."""
    if not paths:
        return []

    def decoded(index: tf.Tensor, path: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        return index, tf.shape(decode_image_file(path))  # the shape needs the decode to run

    ds = tf.data.Dataset.zip((tf.data.Dataset.range(len(paths)), tf.data.Dataset.from_tensor_slices(list(paths))))
    ds = ds.map(decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False).ignore_errors()
    with quiet_stderr():
        readable = {int(index) for index, _ in ds.as_numpy_iterator()}
    return [path for i, path in enumerate(paths) if i not in readable]


def _damaged_message(damaged: Sequence[str]) -> str:
    more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
    return f"{DAMAGED_IMAGE} {damaged[0]}{more}"


def damaged_image(exc: BaseException) -> Optional[str]:
    """The files behind a decode error (:func:`is_decode_error`) that a pipeline of :meth:`ImageFolderSource.load`
    raised, as ``"<DAMAGED_IMAGE> <first path> (and N more)"``; None for any other error, or when
    no folder opened in this process (newest first, up to 8) holds a file that fails to decode.

    The decoder's error names no file, so every file of the folder is decoded again
    (:func:`find_damaged_images`), while anything else written to stderr meanwhile is dropped too."""
    if not is_decode_error(exc):
        return None
    with _OPENED_LOCK:
        opened = list(_OPENED)
    roots = list(OrderedDict.fromkeys(root for root, _ in reversed(opened)))
    for root in roots:
        damaged: List[str] = []
        for split in SPLIT_DIRS:
            if (root, split) not in opened:
                continue
            try:
                paths = list_image_folder(root, split)[0]
            except (DatasetNotFoundError, DatasetFormatError, tf.errors.OpError):  # changed or gone since
                continue
            logger.info("an image could not be decoded: decoding the %d images of %s again to find it (Ctrl-C "
                        "stops)", len(paths), os.path.join(root, SPLIT_DIRS[split]))
            damaged.extend(find_damaged_images(paths))
        if damaged:
            return _damaged_message(damaged)
    return _named_in(exc, DAMAGED_IMAGE)  # a truncated JPEG names itself (outside the folders opened here)


class ImageFolderSource(DatasetSource):
    """The ``image_folder`` dataset; ``num_classes`` and ``image_shape`` come from the folder."""

    name = "image_folder"
    num_classes = 0
    image_shape = None
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __repr__(self) -> str:
        return "ImageFolderSource()"

    def load(
        self,
        split: str,
        *,
        data_dir: str = "",
        manual_dir: str = "",
        download: str = "auto",
        image_size: int = 0,
    ) -> Tuple[tf.data.Dataset, DatasetInfo]:
        """See :meth:`DatasetSource.load`; ``data_dir`` is the folder root, nothing downloads."""
        check_download(download)
        paths, labels, class_names = list_image_folder(data_dir, split)
        if image_size:
            size = (image_size, image_size)
        else:
            train_paths = paths if split == "train" else list_image_folder(data_dir, "train")[0]
            try:
                first = decode_image_file(tf.constant(train_paths[0]))
            except tf.errors.InvalidArgumentError as exc:
                message = not_an_image(exc)
                if message is None and is_decode_error(exc):
                    damaged = find_damaged_images(train_paths)
                    message = _damaged_message(damaged) if damaged else None
                raise DatasetFormatError(message or f"image_folder: {train_paths[0]} cannot be decoded "
                                         f"({str(getattr(exc, 'message', exc)).splitlines()[0]})") from None
            size = (int(first.shape[0]), int(first.shape[1]))
        target = tf.constant(size, tf.int32)

        def fit(image: tf.Tensor) -> tf.Tensor:
            same = tf.reduce_all(tf.equal(tf.shape(image)[:2], target))
            fitted = tf.cond(same, lambda: image, lambda: resize_and_crop(image, *size))
            return tf.ensure_shape(fitted, (*size, 3))

        _remember(data_dir, split)  # for damaged_image, should the pipeline meet a file it cannot decode
        order = np.random.default_rng(FILE_ORDER_SEED).permutation(len(paths))  # classes mixed (module doc)
        paths, labels = [paths[i] for i in order], [labels[i] for i in order]
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths), tf.constant(labels, tf.int64)))
        ds = ds.map(
            lambda path, label: (fit(decode_image_file(path)), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        info = DatasetInfo(self.name, len(class_names), (*size, 3), self.mean, self.std, class_names)
        return ds, info


IMAGE_FOLDER = register_dataset("image_folder")(ImageFolderSource())
