"""TensorFlow Datasets sources: ``cifar10``, ``cifar100``, ``imagenet16-120`` and ``imagenet2012``.

tfds names are used as they are; ``imagenet16-120`` is ``imagenet_resized/16x16`` restricted
to labels ``< 120``, the NAS-Bench-201 ImageNet16-120 convention (Dong & Yang 2020, Sec. 3.3:
the first 120 of the 1000 classes of the 16x16 down-sampled ImageNet of Chrabaszcz et al. 2017).

Missing data fails fast. Before anything downloads, the source asks whether it may and can:
``download="false"`` never downloads; ``"auto"`` downloads only when ``TFNAS_OFFLINE`` is unset
(or ``0``); both ``"auto"`` and ``"true"`` first check that the download host (or the HTTPS
proxy the environment names) accepts a TCP connection within a few seconds, so an offline
machine gets an answer in seconds instead of minutes of tfds retries. The download files can
also be provided by hand: put them (e.g. ``cifar-10-binary.tar.gz``) into a folder and set
``[dataset] manual_dir`` to it; tfds then prepares the dataset from there without the
network. Otherwise :class:`DatasetNotFoundError` names the dataset, the directory tfds looked
in and how to get the data onto this machine.

A download or preparation that fails midway is cleaned up: the ``incomplete.*`` folders and
``*.tmp.*`` download files tfds left behind are removed (and the dataset folder, if this call
created it), and the failure is reported as :class:`DatasetNotFoundError`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
from typing import List, Optional, Set, Tuple

import tensorflow as tf
import tensorflow_datasets as tfds

from tfnas.data.base import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    IMAGENET16_MEAN,
    IMAGENET16_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetInfo,
    DatasetNotFoundError,
    DatasetSource,
    check_download,
    check_split,
    resize_and_crop,
)
from tfnas.io import first_line
from tfnas.registry import register_dataset

logger = logging.getLogger(__name__)

OFFLINE_ENV = "TFNAS_OFFLINE"
HOST_TIMEOUT_S = 3.0


def host_reachable(host: str, port: int = 443, timeout: float = HOST_TIMEOUT_S) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` seconds (DNS included).

    The lookup and connection run in a daemon thread so that a resolver that hangs cannot
    hold the caller longer than ``timeout``.
    """
    result: List[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, name=f"tfnas-probe-{host}", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result) and result[0]


def probe_target(host: str, port: int = 443) -> Tuple[str, int]:
    """The ``(host, port)`` a download of ``host`` really connects to: the HTTPS proxy named by
    the environment (``https_proxy``/``all_proxy``) unless ``no_proxy`` exempts ``host``, else
    ``host:port`` itself."""
    try:
        proxies = urllib.request.getproxies()
        bypass = urllib.request.proxy_bypass(host) if proxies else True
    except Exception:  # a malformed proxy setting: probe the host itself
        return host, port
    proxy = None if bypass else (proxies.get("https") or proxies.get("all"))
    if proxy:
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        try:
            proxy_port = parsed.port
        except ValueError:
            proxy_port = None
        if parsed.hostname:
            default = 443 if parsed.scheme == "https" else 1080 if parsed.scheme.startswith("socks") else 80
            return parsed.hostname, proxy_port or default
    return host, port


def network_reachable(host: str, timeout: float = HOST_TIMEOUT_S) -> bool:
    """Whether a download from ``host`` can start: :func:`host_reachable` on :func:`probe_target`."""
    target, port = probe_target(host)
    return host_reachable(target, port, timeout=timeout)


# Names tfds gives to what it has not finished: ``incomplete.XXXXXX_3.0.2`` dataset folders,
# ``*.incomplete*`` files and ``<url>.tmp.<uuid>`` download folders.
def _is_partial(name: str) -> bool:
    return name.startswith("incomplete.") or ".incomplete" in name or ".tmp." in name


def _local(path: str) -> bool:
    return bool(path) and "://" not in path


def _partial_entries(root: str, depth: int = 3) -> Set[str]:
    """Paths under ``root`` (``depth`` levels down) whose names mark unfinished tfds work."""
    found: Set[str] = set()
    if not _local(root) or not os.path.isdir(root):
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        level = os.path.relpath(dirpath, root).count(os.sep) + (dirpath != root)
        for name in dirnames + filenames:
            if _is_partial(name):
                found.add(os.path.join(dirpath, name))
        dirnames[:] = [d for d in dirnames if not _is_partial(d)] if level < depth else []
    return found


class _PartialCleanup:
    """Notes what exists before tfds runs and, if tfds fails, removes what it left unfinished:
    new partial entries (see :func:`_is_partial`) under the dataset and download folders, and
    those folders themselves when this run created them and nothing complete is in them."""

    def __init__(self, dataset_dir: str, download_dir: str):
        self.dirs = [d for d in (dataset_dir, download_dir) if _local(d)]
        self.existed = {d: os.path.exists(d) for d in self.dirs}
        self.before = set().union(*(_partial_entries(d) for d in self.dirs)) if self.dirs else set()

    def clean(self) -> List[str]:
        removed = []
        for d in self.dirs:
            for path in sorted(_partial_entries(d) - self.before):
                self._remove(path)
                removed.append(path)
        dataset_dir = self.dirs[0] if self.dirs else ""
        for d in self.dirs:
            if self.existed[d] or not os.path.isdir(d):
                continue
            if d == dataset_dir or not _has_files(d):
                # the dataset folder is only renamed into place on success: nothing in a new one is complete
                self._remove(d)
                removed.append(d)
        return removed

    @staticmethod
    def _remove(path: str) -> None:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError as exc:  # pragma: no cover - best effort; say what is left
            logger.warning("could not remove %s left by a failed tfds download: %s", path, exc)


def _has_files(root: str) -> bool:
    return any(filenames for _, _, filenames in os.walk(root))


def offline_by_env() -> bool:
    """True when the environment variable ``TFNAS_OFFLINE`` is set to anything but ``""``/``0``."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _builder(tfds_name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """``tfds.builder``, without the empty folder it leaves in the temp folder for a dataset that is
    not prepared (``DatasetInfo.initialize_from_bucket`` makes one, even with its GCS bucket off, and
    never removes it: one ``tmpXXXXtfds`` per run). Such a folder that is new and empty is removed."""
    temp = tempfile.gettempdir()
    before = _tfds_temp_folders(temp)
    try:
        return tfds.builder(tfds_name, data_dir=data_dir or None)
    finally:
        for name in _tfds_temp_folders(temp) - before:
            try:
                os.rmdir(os.path.join(temp, name))  # (only an empty one goes)
            except OSError:
                pass


def _tfds_temp_folders(temp: str) -> Set[str]:
    try:
        return {name for name in os.listdir(temp) if name.startswith("tmp") and name.endswith("tfds")}
    except OSError:
        return set()


class TfdsSource(DatasetSource):
    """A tfds dataset with fixed train/eval splits.

    Args:
      name: registered name.
      tfds_name: tfds name, with config (``imagenet_resized/16x16``).
      num_classes: classes kept (labels ``>= num_classes`` are filtered out when
        ``filter_labels`` is true).
      image_shape: native ``(H, W, 3)``, or ``None`` for variable-size images.
      train_split, eval_split: tfds split names.
      mean, std: normalisation statistics of images in ``[0, 1]``.
      download_host: host tfds downloads from (probed when ``download="auto"``).
      manual_files: files that must be in ``manual_dir`` (datasets tfds cannot download).
      archive_files: the files tfds downloads, which ``manual_dir`` may hold instead (default:
        the file names of the builder's registered URLs).
      default_size: side used when ``image_size=0`` and images vary in size.
      filter_labels: keep only labels ``< num_classes``.
    """

    def __init__(
        self,
        name: str,
        tfds_name: str,
        num_classes: int,
        image_shape: Optional[Tuple[int, int, int]],
        *,
        train_split: str,
        eval_split: str,
        mean: Tuple[float, float, float],
        std: Tuple[float, float, float],
        download_host: str = "",
        manual_files: Tuple[str, ...] = (),
        archive_files: Tuple[str, ...] = (),
        default_size: int = 0,
        filter_labels: bool = False,
    ):
        self.name = name
        self.tfds_name = tfds_name
        self.num_classes = num_classes
        self.image_shape = image_shape
        self.train_split = train_split
        self.eval_split = eval_split
        self.mean = mean
        self.std = std
        self.download_host = download_host
        self.manual_files = manual_files
        self.archive_files = tuple(archive_files)
        self.default_size = default_size
        self.filter_labels = filter_labels

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, tfds_name={self.tfds_name!r})"

    def load(
        self,
        split: str,
        *,
        data_dir: str = "",
        manual_dir: str = "",
        download: str = "auto",
        image_size: int = 0,
    ) -> Tuple[tf.data.Dataset, DatasetInfo]:
        """See :meth:`DatasetSource.load`; yields ``(uint8 [H, W, 3], int64 [])`` in file order."""
        check_split(split)
        check_download(download)
        builder = _builder(self.tfds_name, data_dir)
        tfds_split = self.train_split if split == "train" else self.eval_split
        ds = self._read(builder, tfds_split)
        if ds is None:
            self._prepare(builder, data_dir=data_dir, manual_dir=manual_dir, download=download)
            ds = self._read(builder, tfds_split)
            if ds is None:
                raise DatasetNotFoundError(
                    f"{self.name}: tfds prepared {self.tfds_name!r} but no data is in "
                    f"{builder.data_dir}; delete that folder and try again."
                )
        if self.filter_labels:
            limit = tf.constant(self.num_classes, tf.int64)
            ds = ds.filter(lambda image, label: label < limit)
        size = image_size or (0 if self.image_shape is not None else self.default_size)
        if size and (self.image_shape is None or self.image_shape[:2] != (size, size)):
            ds = ds.map(lambda image, label: (resize_and_crop(image, size, size), label))
            shape = (size, size, 3)
        else:
            shape = self.image_shape  # type: ignore[assignment]
        info = DatasetInfo(self.name, self.num_classes, shape, self.mean, self.std)
        return ds, info

    def _read(self, builder: tfds.core.DatasetBuilder, tfds_split: str) -> Optional[tf.data.Dataset]:
        """The split as ``(image, label)`` in a fixed order, or ``None`` when it is not prepared."""
        try:
            ds = builder.as_dataset(split=tfds_split, shuffle_files=False, as_supervised=True)
        except AssertionError:
            # tfds signals "not prepared" with an AssertionError; anything else on an existing
            # directory is a real problem and propagates.
            if tf.io.gfile.exists(builder.data_dir):
                raise
            return None
        return ds.map(lambda image, label: (image, tf.cast(label, tf.int64)))

    def _prepare(
        self, builder: tfds.core.DatasetBuilder, *, data_dir: str, manual_dir: str, download: str
    ) -> None:
        """Downloads and prepares the data if allowed and possible, else raises DatasetNotFoundError."""
        looked_in = builder.data_dir
        where = f"[dataset] data_dir = {data_dir}" if data_dir else "the tfds default data_dir"
        if self.manual_files:
            self._prepare_manual(builder, manual_dir, looked_in, where)
            return
        files = self.download_files(builder)
        if manual_dir and files and all(tf.io.gfile.exists(os.path.join(manual_dir, f)) for f in files):
            logger.info("Preparing %s from %s into %s", self.tfds_name, manual_dir, looked_in)
            self._run_tfds(builder, tfds.download.DownloadConfig(manual_dir=manual_dir), looked_in)
            return
        if download == "false":
            reason = "downloading is off ([dataset] download = false)"
        elif download == "auto" and offline_by_env():
            reason = f"downloading is off ({OFFLINE_ENV} is set)"
        elif not network_reachable(self.download_host):
            target, port = probe_target(self.download_host)
            via = "" if target == self.download_host else f" (through the proxy {target}:{port})"
            reason = (f"the network is unreachable: the download host {self.download_host}{via} did not "
                      f"answer within {HOST_TIMEOUT_S:g} s")
        else:
            reason = ""
        if reason:  # with the network down, downloading is already allowed: the advice is to wait for it
            advice = self._how_to_get(files, downloading=reason.startswith("the network is unreachable"))
            missing = f"{self._missing(looked_in, where)} and {reason}"
            raise DatasetNotFoundError(f"{missing}. {advice}", reason=missing)
        logger.info("Downloading and preparing %s into %s", self.tfds_name, looked_in)
        self._run_tfds(builder, None, looked_in, files)

    def download_files(self, builder: tfds.core.DatasetBuilder) -> Tuple[str, ...]:
        """Names of the files tfds downloads for this dataset (what ``manual_dir`` must hold)."""
        if self.archive_files:
            return self.archive_files
        try:
            infos = builder.url_infos or {}
        except Exception:  # pragma: no cover - builders without checksum files
            return ()
        return tuple(sorted({info.filename for info in infos.values() if getattr(info, "filename", None)}))

    def _missing(self, looked_in: str, where: str) -> str:
        return f"{self.name}: tfds dataset {self.tfds_name!r} is not prepared in {looked_in} ({where})"

    def _how_to_get(self, files: Tuple[str, ...], downloading: bool = False) -> str:
        by_hand = ""
        if files:
            by_hand = (f"Or download {' and '.join(files)} by hand, put them into a folder and set "
                       f"[dataset] manual_dir to it (tfds prepares the dataset from there, offline). ")
        return (
            f"To get it, run on a machine with internet access: "
            f"python -c \"import tensorflow_datasets as tfds; tfds.load('{self.tfds_name}')\" "
            f"and copy its ~/tensorflow_datasets/{self.tfds_name.split('/')[0]} folder into the "
            f"data_dir here, or set [dataset] data_dir to a folder that already holds it. {by_hand}"
            + ("Rerun once the network is back ([dataset] download = true or auto lets tfds download it)."
               if downloading else "Set [dataset] download = true to let tfds try once the network is back.")
        )

    def _run_tfds(self, builder: tfds.core.DatasetBuilder, config: Optional[tfds.download.DownloadConfig],
                  looked_in: str, files: Tuple[str, ...] = ()) -> None:
        """``builder.download_and_prepare``; on failure removes what tfds left half-done and
        raises :class:`DatasetNotFoundError` (interrupts are cleaned up and re-raised)."""
        root = os.fspath(builder.data_dir_root)
        cleanup = _PartialCleanup(os.path.join(root, self.tfds_name.split("/")[0]), os.path.join(root, "downloads"))
        try:
            if config is None:
                builder.download_and_prepare()
            else:
                builder.download_and_prepare(download_config=config)
        except BaseException as exc:
            removed = cleanup.clean()
            if removed:
                logger.info("removed what the failed tfds run left: %s", ", ".join(removed))
            if not isinstance(exc, Exception):
                raise
            source = "from [dataset] manual_dir" if config is not None else "downloading"
            detail = first_line(exc)
            what = type(exc).__name__ + (f": {detail}" if detail != type(exc).__name__ else "")
            failed = (f"{self.name}: preparing tfds dataset {self.tfds_name!r} into {looked_in} ({source}) failed: "
                      f"{what}. Partial files were removed")
            raise DatasetNotFoundError(
                f"{failed}. {self._how_to_get(files or self.download_files(builder), downloading=config is None)}",
                reason=failed) from exc

    def _prepare_manual(
        self, builder: tfds.core.DatasetBuilder, manual_dir: str, looked_in: str, where: str
    ) -> None:
        files = " and ".join(self.manual_files)
        if not manual_dir:
            missing = (f"{self.name}: tfds dataset {self.tfds_name!r} is not prepared in {looked_in} "
                       f"({where}) and cannot be downloaded automatically (tfds prepares it from {files}, "
                       f"from https://image-net.org)")
            raise DatasetNotFoundError(
                f"{missing}. Set [dataset] manual_dir to a folder holding those files, and tfds will "
                f"prepare it once into the data_dir.", reason=missing)
        missing = [f for f in self.manual_files if not tf.io.gfile.exists(os.path.join(manual_dir, f))]
        if missing:
            raise DatasetNotFoundError(
                f"{self.name}: [dataset] manual_dir = {manual_dir} lacks {', '.join(missing)}; it "
                f"must hold {files} (the ILSVRC2012 tar files from https://image-net.org)."
            )
        logger.info("Preparing %s from %s into %s", self.tfds_name, manual_dir, looked_in)
        self._run_tfds(builder, tfds.download.DownloadConfig(manual_dir=manual_dir), looked_in, self.manual_files)


CIFAR10 = register_dataset("cifar10")(
    TfdsSource(
        "cifar10", "cifar10", 10, (32, 32, 3),
        train_split="train", eval_split="test",
        mean=CIFAR10_MEAN, std=CIFAR10_STD, download_host="www.cs.toronto.edu",
    )
)
CIFAR100 = register_dataset("cifar100")(
    TfdsSource(
        "cifar100", "cifar100", 100, (32, 32, 3),
        train_split="train", eval_split="test",
        mean=CIFAR100_MEAN, std=CIFAR100_STD, download_host="www.cs.toronto.edu",
    )
)
IMAGENET16_120 = register_dataset("imagenet16-120")(
    TfdsSource(
        "imagenet16-120", "imagenet_resized/16x16", 120, (16, 16, 3),
        train_split="train", eval_split="validation",
        mean=IMAGENET16_MEAN, std=IMAGENET16_STD, download_host="www.image-net.org",
        archive_files=("Imagenet16_train_npz.zip", "Imagenet16_val_npz.zip"), filter_labels=True,
    )
)
IMAGENET2012 = register_dataset("imagenet2012")(
    TfdsSource(
        "imagenet2012", "imagenet2012", 1000, None,
        train_split="train", eval_split="validation",
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
        manual_files=("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
        default_size=224,
    )
)
