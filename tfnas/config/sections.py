"""The typed sections of a ``.cfg`` file: one frozen dataclass per INI section.

Each field has a default; its ``metadata`` may carry ``choices`` (allowed strings),
``min``/``max`` (inclusive range) or ``registry`` (a registry whose names the value must be one
of, e.g. ``method``). Empty strings mean "not set" for optional paths. Loading, validation and
the error messages live in :mod:`tfnas.config.loader`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple


class ConfigError(ValueError):
    """A bad configuration: one line naming file, section, key and what was expected."""


from tfnas.config.fields import _f
from tfnas.formats import FORMATS, MAX_IMAGE_SIZE, QUANTIZATIONS
from tfnas.config.method_sections import BrpConfig, ControllerConfig, NagConfig, PredictorConfig

MAX_WORKERS, MAX_WORKER_THREADS = 65536, 4096  # far above any cluster; a pool's semaphore holds a C int, Ray hung


@dataclass(frozen=True)
class RunConfig:
    """[run]: what every run shares.

    Attributes:
      seed: root seed, 0 to 2**32 - 1 (the range of NumPy's and Keras' global seeds); every random
        draw of the run derives from it.
      out_dir: run directory; empty means ``runs/<config file stem>``.
      jit_compile: XLA for training steps: ``auto`` = only when a GPU is visible, and never for the
        weight-sharing supernets or the short one-candidate trainings (training oracle, RS-NAG);
        ``true`` turns it on for those too.
      strategy: ``tf.distribute`` strategy for training (``auto`` = mirrored over all GPUs when
        there are several, else one device).
      progress: show progress bars.
      tensorboard: write TensorBoard event files (training curves, search history, sweep records,
        one hparams row) under ``<run dir>/tensorboard/`` (``tfnas.run.events``).
      executor: where candidate evaluations run (``tfnas.evaluation.executors``): ``local`` (this
        process), ``process`` (a pool of worker processes) or ``ray`` (Ray actors). The results do
        not depend on it, so a run may resume under another executor.
      workers: worker processes / actors (0 = one per GPU when visible, else one per core; at most 65,536).
      worker_threads: TensorFlow intra-op threads per worker (at most 4,096). 0 = TensorFlow's default, as in this
        process, so every executor computes bit-identical results; N > 0 avoids oversubscribing
        the cores, but scores then differ from ``local`` in the last digits (float sums split over
        another number of threads), enough for a long evolution to take another path.
      ray_address: ``local`` (a private Ray instance), ``auto`` (the cluster this machine joined
        with ``ray start``), ``HOST:PORT`` of a Ray head node, or ``ray://HOST:PORT`` (Ray Client); read
        only when ``executor = ray``, and a head that does not answer is refused within seconds.
    """

    seed: int = _f(0, min=0, max=2 ** 32 - 1)
    out_dir: str = _f("", home=True)
    jit_compile: str = _f("auto", choices=("auto", "true", "false"))
    strategy: str = _f("auto", choices=("auto", "one_device", "mirrored", "multi_worker"))
    progress: bool = _f(True)
    tensorboard: bool = _f(True)
    executor: str = _f("local", choices=("local", "process", "ray"))
    workers: int = _f(0, min=0, max=MAX_WORKERS)
    worker_threads: int = _f(0, min=0, max=MAX_WORKER_THREADS)
    ray_address: str = _f("local")


@dataclass(frozen=True)
class MethodConfig:
    """[method]: the search method, by registered name."""

    name: str = _f("rand", registry="method")


@dataclass(frozen=True)
class SpaceConfig:
    """[space]: the search space and, for training/export, one architecture of it.

    Attributes:
      name: registered space name.
      arch: architecture string (``tools/train.py``; empty for searches).
      channels: stem/first-stage width (NB201: 16; DARTS evaluation network: 36).
      cells_per_stage: cells per stage (NB201: 5).
      start: the seed architecture of an evolutionary search (Zen: a block string; empty =
        the space's default start).
      family: block family of the Zen space: ``resnet`` (ResNet blocks) or ``mobile``
        (inverted-residual IDW blocks).
      kernel_weights: how a Zen-space mutation weights the block types of the family: ``uniform``
        or ``reference`` (Zen-NAS code: kernels 3 : 5 : 7 drawn 3 : 3 : 2), for like-for-like
        comparisons with the reference search.
      layers: cells of the DARTS evaluation network (paper: 20 on CIFAR).
      search_channels: width of a weight-sharing search network (RelativeNAS: 16).
      search_layers: cells of a weight-sharing search network (RelativeNAS: 8).
      blocks: normal cells per stage of the lite (SLNAS) network, comma-separated; each stage
        ends with a reduction cell (SLNAS: ``2, 2``).
      search_blocks: normal cells per stage of the lite weight-sharing search network (SLNAS:
        ``4, 4``, i.e. 10 cells).
      dropout: dropout before the classifier of a trained network (``nasnet_dag`` only; NAG: 0.4).
    """

    name: str = _f("nb201", registry="space")
    arch: str = _f("", multiline=True)
    channels: int = _f(16, min=1)
    cells_per_stage: int = _f(5, min=1)
    start: str = _f("", multiline=True)
    family: str = _f("resnet", choices=("resnet", "mobile"))
    kernel_weights: str = _f("uniform", choices=("uniform", "reference"))
    layers: int = _f(20, min=1)
    search_channels: int = _f(16, min=1)
    search_layers: int = _f(8, min=1)
    blocks: Tuple[int, ...] = _f((2, 2), min=0)
    search_blocks: Tuple[int, ...] = _f((4, 4), min=0)
    dropout: float = _f(0.0, min=0.0, max=0.99)


@dataclass(frozen=True)
class DatasetConfig:
    """[dataset]: the data; the same name selects the benchmark's column.

    Attributes:
      name: ``cifar10``, ``cifar100``, ``imagenet16-120``, ``imagenet2012`` or ``image_folder``.
      data_dir: tfds data dir (empty = tfds default) or the image-folder root.
      manual_dir: tfds manual dir: the files of a dataset tfds cannot download (imagenet2012), or the
        downloaded archives of any other (e.g. CIFAR's), prepared without the network.
      download: ``true`` lets tfds download missing data; ``false`` never downloads and fails
        fast with instructions; ``auto`` downloads only when the download host answers quickly and
        the environment variable ``TFNAS_OFFLINE`` is unset or ``0`` (the tests and CI set it).
      train_subset: use only the first N training images (0 = all).
      eval_subset: use only the first N evaluation images (0 = all).
      image_size: resize to this size (0 = native; at most 4096).
      batch_size: global training batch size.
      eval_batch_size: evaluation batch size.
    """

    name: str = _f("cifar10", registry="dataset")
    data_dir: str = _f("", folder=True)
    manual_dir: str = _f("", folder=True)
    download: str = _f("auto", choices=("auto", "true", "false"))
    train_subset: int = _f(0, min=0)
    eval_subset: int = _f(0, min=0)
    image_size: int = _f(0, min=0, max=MAX_IMAGE_SIZE)
    batch_size: int = _f(64, min=1)
    eval_batch_size: int = _f(256, min=1)


@dataclass(frozen=True)
class BenchmarkConfig:
    """[benchmark]: tabular ground truth.

    Attributes:
      name: registered benchmark: ``nb201`` (the shipped table), ``train`` (the training oracle: each cell
        trained on the dataset, results cached on disk) or ``none``.
      source: empty = the table shipped in the package; otherwise a NATS-Bench topology file.
      metric: the figure queried (``test_acc``: 200-epoch test accuracy).
    """

    name: str = _f("nb201", registry="benchmark", allow=("none",))
    source: str = _f("", path=True)
    metric: str = _f("test_acc", choices=("test_acc",))


@dataclass(frozen=True)
class BudgetConfig:
    """[budget]: the sweep and the resource limits of a search.

    Attributes:
      start, stop, step: the query budgets ``range(start, stop + 1, step)`` of benchmark sweeps.
      repeats: independent repeats per budget (benchmark sweeps).
      max_params: parameter limit of a found network (0 = none), e.g. 1e6.
      max_flops: FLOPs limit (multiply-accumulates, as the papers count them; 0 = none).
      max_layers: limit on the number of weight layers (Zen-NAS CIFAR: 18; 0 = none).
    """

    start: int = _f(50, min=1)
    stop: int = _f(200, min=1)
    step: int = _f(50, min=1)
    repeats: int = _f(10, min=1)
    max_params: float = _f(0.0, min=0.0)
    max_flops: float = _f(0.0, min=0.0)
    max_layers: int = _f(0, min=0)

    def budgets(self) -> List[int]:
        return list(range(self.start, self.stop + 1, self.step))


@dataclass(frozen=True)
class ProxyConfig:
    """[proxy]: zero-shot proxies.

    Attributes:
      name: the proxy that scores candidates (evolution) or estimation codes.
      names: proxies compared by ``proxy_corr`` (empty = just ``name``).
      batch_size: batch of random inputs a proxy sees (papers: 64; at least 2, for BatchNorm's
        batch statistics).
      subset: score this many random NB201 cells in ``proxy_corr`` (0 = all 15,625).
      zen_weight: weight of the Zen score in the Incorporated score (CIFAR: 0.5).
      zen_bn_variance: the BN term of the Zen score (and of the Incorporated scores): ``batch``
        (each BN's batch variance, the Zen-NAS paper's formula) or ``running`` (the running
        variance PyTorch holds after the two training-mode passes, which the Zen-NAS code reads).
      entropy_weight: weight of the normalised entropy in the Incorporated score (CIFAR: 0.01).
      grad_norm: reduction of ``grad_norm``: ``global`` (sqrt of the summed squares over all
        kernels; spec, Zen-NAS) or ``layer_sum`` (sum of per-layer norms; zero-cost-nas, whose
        NAS-Bench-201 correlations are the published ones).
    """

    name: str = _f("synflow", registry="proxy")
    names: Tuple[str, ...] = _f((), registry="proxy")
    batch_size: int = _f(64, min=2)
    subset: int = _f(0, min=0)
    zen_weight: float = _f(0.5, min=0.0)
    zen_bn_variance: str = _f("batch", choices=("batch", "running"))
    entropy_weight: float = _f(0.01, min=0.0)
    grad_norm: str = _f("global", choices=("global", "layer_sum"))


@dataclass(frozen=True)
class SearchConfig:
    """[search]: search-loop knobs shared by methods (unset keys some methods set otherwise: method_defaults.py).

    Attributes:
      bts: batch top sampling (Siamese-NAS).
      init_fraction: share of the budget queried before training with BTS.
      update_split: number of BTS sampling points in the middle half of training.
      sample_fraction: share of the space ranked at each BTS point and best-weights check.
      rank_k: top-k re-ranked with the estimation code during search.
      final_rank_k: top-k re-ranked with the estimation code in the final ranking.
      reserve: queries reserved for best-weights selection in the last epochs.
      pool_size: candidates drawn (with the run seed) from an open space such as Tiny-NanoBench;
        predictor-based methods rank this pool as they rank NB201's 15,625 cells.
      population: population size (evolution: Zen 512 / Incorporated 256; RelativeNAS: 20).
      iterations: evolution iterations (paper: Zen 480k, Incorporated 96k).
      record_every: write a progress record (and checkpoint) every this many iterations.
      effectiveness_filter: reject candidates whose max rho exceeds ``max_rho`` (Incorporated-NAS).
      max_rho: threshold of the effectiveness filter.
      generations: RelativeNAS generations (paper: 50).
      steps_per_epoch: cap on the training steps of one member's epoch (0 = the full train half).
      lr, lr_min: cosine learning-rate range over generations of a weight-sharing search.
      momentum, weight_decay, grad_clip: SGD settings of a weight-sharing search.
      drop_path: drop-path rate of a weight-sharing search, ramped from 0: step g (from 0) of G uses drop_path * g / G.
      batch_size: batch of a weight-sharing search (0 = ``[dataset] batch_size``; unset in a file, the method's
        paper's: RelativeNAS 256, SLNAS 96, NAG 128, tfnas/config/method_defaults.py).
      epochs: SLNAS epochs, each shared-weight training then controller training (paper: 150); NAG's supernet's.
      controller_steps: controller updates per SLNAS epoch, one reward batch each (paper: 150).
      reward_fraction: share of the training split held out for SLNAS rewards (paper: 10k of 50k).
      aux_weight: auxiliary-loss weight of the SLNAS search network (paper: 0.4).
      pick_epochs: SLNAS picks the architecture with the best mean reward over the samples of
        this many last epochs (0 = all epochs).
      objective: ``accuracy``; ``latency:<device>`` (best accuracy with the NB201 table's latency on
        ``<device>`` <= ``max_latency_ms``); ``pareto:<device>`` (also writes the accuracy-latency front).
        ``evolution`` takes ``latency:litert`` and ``pareto:litert`` only: the latency *measured on this
        machine*, the median batch-1 LiteRT (TFLite CPU interpreter) time of each child's converted
        network, cached in ``<out_dir>/latency_cache/``; children over ``max_latency_ms`` are rejected
        (``pareto:litert``: a two-objective NSGA-II evolution of accuracy proxy and latency).
      max_latency_ms: latency limit (ms) on the objective's device (0 = none; > 0 needs a device).
      batch: evolution children generated from one population and scored together (in parallel
        with ``[run] executor``); 1 = the paper's one-at-a-time loop. Results depend on ``batch``,
        never on the executor or its workers.
      latency_threads, latency_runs, latency_warmup: LiteRT threads, timed and untimed runs of a
        ``latency:litert`` measurement.
      latency_quantize: the measured TFLite model: ``none`` (float32), ``float16`` or ``int8``.
    """

    bts: bool = _f(True)
    init_fraction: float = _f(0.3, min=0.0, max=1.0)
    update_split: int = _f(10, min=1)
    sample_fraction: float = _f(0.1, gt=0.0, max=1.0)
    rank_k: int = _f(30, min=1)
    final_rank_k: int = _f(60, min=1)
    reserve: int = _f(3, min=0)
    pool_size: int = _f(1000, min=1)
    population: int = _f(256, min=2)
    iterations: int = _f(1000, min=1)
    record_every: int = _f(100, min=1)
    effectiveness_filter: bool = _f(True)
    max_rho: float = _f(0.5, min=0.0)
    generations: int = _f(50, min=1)
    steps_per_epoch: int = _f(0, min=0)
    lr: float = _f(0.1, gt=0.0)
    lr_min: float = _f(0.001, min=0.0)
    momentum: float = _f(0.9, min=0.0, max=1.0)
    weight_decay: float = _f(3e-4, min=0.0)
    grad_clip: float = _f(5.0, min=0.0)
    drop_path: float = _f(0.3, min=0.0, max=1.0)
    batch_size: int = _f(0, min=0)
    epochs: int = _f(150, min=1)
    controller_steps: int = _f(150, min=1)
    reward_fraction: float = _f(0.2, min=0.0, max=1.0)
    aux_weight: float = _f(0.4, min=0.0)
    pick_epochs: int = _f(10, min=0)
    objective: str = _f("accuracy")
    max_latency_ms: float = _f(0.0, min=0.0)
    batch: int = _f(1, min=1)
    latency_threads: int = _f(1, min=1)
    latency_runs: int = _f(50, min=1)
    latency_warmup: int = _f(5, min=0)
    latency_quantize: str = _f("none", choices=QUANTIZATIONS)


@dataclass(frozen=True)
class TrainConfig:
    """[train]: the Trainer's recipe: ``tools/train.py``, a search that trains its result (``enabled``), the
    training oracle and training estimation code (some keys), RS-NAG's short trainings, and the augmentation of
    the weight-sharing searches (``flip``, ``pad_crop``, ``cutout``).

    Attributes:
      enabled: train the found architecture at the end of a search.
      epochs: training epochs.
      optimizer: ``sgd`` (momentum, optional Nesterov), ``adam`` or ``adabelief`` (betas 0.9 /
        0.999, eps 1e-8: the NAG reference's final training on CIFAR-10).
      lr: peak learning rate.
      momentum: SGD momentum.
      nesterov: Nesterov momentum.
      weight_decay: L2 coupled weight decay (added to the gradient).
      weight_decay_scope: what it decays: ``kernels`` (conv/dense kernels; Zen-NAS, SLNAS) or
        ``all`` trainable variables (a PyTorch optimizer on ``model.parameters()``: DARTS, NAG).
      schedule: ``cosine``, ``step`` or ``constant`` (after warm-up).
      warmup_epochs: linear warm-up epochs.
      step_epochs: epochs at which the step schedule multiplies the lr by ``step_gamma``.
      step_gamma: step schedule factor.
      lr_min: final lr of the cosine schedule.
      grad_clip: global-norm gradient clipping (0 = off).
      label_smoothing: label smoothing of the cross-entropy.
      aux_weight: auxiliary-head loss weight (models with an auxiliary head).
      drop_path: final drop-path rate, ramped linearly over epochs (models with DropPath).
      drop_path_until: fraction of the epochs during which the drop-path rate ramps; after it
        the rate stays at that of the last ramped epoch (1 = ramp throughout; SLNAS: 0.7).
      color_jitter: brightness, contrast and saturation jitter strength ``s``: each factor is
        drawn from ``U[1 - s, 1 + s]``, as torchvision's ``ColorJitter`` (0 = off; SLNAS on
        image folders: 0.4).
      hue_jitter: hue shift drawn from ``U[-h, h]`` turns of the colour wheel (0 = off; SLNAS
        on image folders: 0.1).
      grayscale: probability of turning an image grey (0 = off; SLNAS on image folders: 0.2).
      low_resolution: probability of training on a low-resolution copy (side / 2, 4 or 8 and
        back, antialiased; 0 = off; SLNAS on image folders: 0.45).
      flip: random horizontal flip.
      random_resized_crop: Inception-style crop (area 8-100 %, aspect 3/4-4/3) resized back to
        the training size, as torchvision's ``RandomResizedCrop`` (SLNAS on image folders;
        usually with ``pad_crop = 0``).
      pad_crop: pad-and-random-crop margin in pixels (0 = off).
      cutout: cutout square size in pixels (0 = off).
      mixup_alpha: mixup Beta(alpha, alpha) (0 = off).
      random_erasing: random-erasing probability (0 = off).
      checkpoint_every: save a checkpoint every N epochs (resume after a kill).
    """

    enabled: bool = _f(False)
    epochs: int = _f(10, min=1)
    optimizer: str = _f("sgd", choices=("sgd", "adam", "adabelief"))
    lr: float = _f(0.1, gt=0.0)
    momentum: float = _f(0.9, min=0.0, max=1.0)
    nesterov: bool = _f(True)
    weight_decay: float = _f(5e-4, min=0.0)
    weight_decay_scope: str = _f("kernels", choices=("kernels", "all"))
    schedule: str = _f("cosine", choices=("cosine", "step", "constant"))
    warmup_epochs: int = _f(0, min=0)
    step_epochs: Tuple[int, ...] = _f((), min=1)
    step_gamma: float = _f(0.1, min=0.0)
    lr_min: float = _f(0.0, min=0.0)
    grad_clip: float = _f(5.0, min=0.0)
    label_smoothing: float = _f(0.0, min=0.0, max=1.0)
    aux_weight: float = _f(0.0, min=0.0)
    drop_path: float = _f(0.0, min=0.0, max=1.0)
    drop_path_until: float = _f(1.0, min=0.0, max=1.0)
    color_jitter: float = _f(0.0, min=0.0, max=1.0)
    hue_jitter: float = _f(0.0, min=0.0, max=0.5)
    grayscale: float = _f(0.0, min=0.0, max=1.0)
    low_resolution: float = _f(0.0, min=0.0, max=1.0)
    flip: bool = _f(True)
    random_resized_crop: bool = _f(False)
    pad_crop: int = _f(4, min=0)
    cutout: int = _f(0, min=0)
    mixup_alpha: float = _f(0.0, min=0.0)
    random_erasing: float = _f(0.0, min=0.0, max=1.0)
    checkpoint_every: int = _f(1, min=1)


@dataclass(frozen=True)
class ExportConfig:
    """[export]: export the trained network (``tools/train.py``, searches that train their result).

    Attributes:
      enabled: export at the end of the training.
      format: one or several of ``saved_model`` (``saved_model/``), ``keras`` (``model.keras``) and
        ``tflite`` (``model.tflite``, or ``model_<quantize>.tflite`` when quantized), comma-separated.
      quantize: TFLite quantization: ``none``, ``float16`` or ``int8`` (needs ``tflite`` in ``format``).
      calibration: int8 calibration images: a registered dataset or an image-folder root (empty =
        the run's own ``[dataset]`` training split); see :mod:`tfnas.run.exports`.
    """

    enabled: bool = _f(True)
    format: Tuple[str, ...] = _f(("saved_model",), choices=FORMATS)
    quantize: str = _f("none", choices=QUANTIZATIONS)
    calibration: str = _f("", home=True)  # as given: "cifar10/" is a folder of that name, "cifar10" the dataset


SECTIONS: Dict[str, type] = {
    "run": RunConfig,
    "method": MethodConfig,
    "space": SpaceConfig,
    "dataset": DatasetConfig,
    "benchmark": BenchmarkConfig,
    "budget": BudgetConfig,
    "predictor": PredictorConfig,
    "proxy": ProxyConfig,
    "search": SearchConfig,
    "train": TrainConfig,
    "export": ExportConfig,
    "controller": ControllerConfig,
    "nag": NagConfig,
    "brp": BrpConfig,
}


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration; ``source`` is the file it came from, ``overrides`` the
    keys that ``--set`` gave."""

    run: RunConfig = field(default_factory=RunConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    nag: NagConfig = field(default_factory=NagConfig)
    brp: BrpConfig = field(default_factory=BrpConfig)
    source: str = ""
    #: ``section.key`` of every value given by ``--set`` (messages name ``--set`` as its origin).
    overrides: Tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The experiment name: the config file's stem."""
        return os.path.splitext(os.path.basename(self.source))[0] if self.source else "run"

    @property
    def out_dir(self) -> str:
        return self.run.out_dir or os.path.join("runs", self.name)

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)
