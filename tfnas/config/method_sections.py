"""The sections of single method families: ``[predictor]`` (Siamese-NAS), ``[brp]`` (BRP-NAS),
``[controller]`` (SLNAS) and ``[nag]`` (NAG)."""

from __future__ import annotations

from dataclasses import dataclass

from tfnas.config.fields import _f


@dataclass(frozen=True)
class PredictorConfig:
    """[predictor]: graph accuracy predictors (Siamese-NAS).

    Attributes:
      units: GCN feature width.
      epochs: total training epochs.
      batch_size: predictor batch size.
      lr: learning rate for the first 70 % of epochs.
      lr_final: learning rate for the last 30 %.
      huber_delta: Huber loss delta on accuracies in [0, 1].
      nsam: use the node self-attention module.
      ec_source: estimation code source: ``table`` (12-epoch figures), ``train`` or a proxy name.
      ec_epochs: epochs of short training for ``ec_source = train`` (one loss per epoch).
      ec_subset: training images of that short training (0: ``[dataset] train_subset``, or 512 when
        that is 0 too; the reference trains its codes on 512).
      jit_compile: XLA for the predictor train step (``auto`` = on: 2.6x faster on a 2-core CPU,
        docs/PERFORMANCE.md; not measured on a GPU).
    """

    units: int = _f(64, min=1)
    epochs: int = _f(200, min=1)
    batch_size: int = _f(8, min=1)
    lr: float = _f(1e-3, gt=0.0)
    lr_final: float = _f(1e-4, min=0.0)
    huber_delta: float = _f(0.5, gt=0.0)
    nsam: bool = _f(True)
    ec_source: str = _f("table")
    ec_epochs: int = _f(3, min=1)
    ec_subset: int = _f(0, min=0)
    jit_compile: str = _f("auto", choices=("auto", "true", "false"))


@dataclass(frozen=True)
class BrpConfig:
    """[brp]: BRP-NAS, the binary relation predictor and its iterative data selection (``brp_nas``).

    Defaults are the authors' (paper Sec. 4.2 and their code's NB201 configs); see :mod:`tfnas.methods.brp`.

    Attributes:
      units: GCN features per node (BRP-NAS: 600).
      layers: GCN layers (BRP-NAS: 4).
      dropout: after every GCN layer (BRP-NAS: 0.2).
      lr / weight_decay: AdamW (BRP-NAS: 3.5e-4, 5e-4), cosine-decayed to 0 over each round's training.
      epochs: training epochs after the last round; round ``t`` of ``T`` trains ``epochs * (t + 1) / T``
        (BRP-NAS: 250, i.e. 50, 100, ..., 250).
      batch_size: cells per training step, trained on all their ordered pairs.
      iterations: rounds ``T`` the budget is spent in (BRP-NAS: 5; at most ``budget // 2``, so that every
        round queries at least 2 cells).
      top_fraction: share of a round's queries taken from the top of the predicted ranking; the rest
        are random cells from its top ``1 / 2^t`` (BRP-NAS: 0.5).
      jit_compile: XLA for the training epoch (``auto`` = on: a search 1.4x faster once compiled on a
        2-core CPU at 128 units, docs/PERFORMANCE.md).
    """

    units: int = _f(600, min=1)
    layers: int = _f(4, min=1)
    dropout: float = _f(0.2, min=0.0, max=0.99)
    lr: float = _f(3.5e-4, gt=0.0)
    weight_decay: float = _f(5e-4, min=0.0)
    epochs: int = _f(250, min=1)
    batch_size: int = _f(16, min=2)
    iterations: int = _f(5, min=1)
    top_fraction: float = _f(0.5, min=0.0, max=1.0)
    jit_compile: str = _f("auto", choices=("auto", "true", "false"))


@dataclass(frozen=True)
class ControllerConfig:
    """[controller]: the SLNAS architecture controller (``slnas_controller``, the SLNAS search).

    Attributes:
      kind: ``lstm`` (the two-stage LSTM controller trained with REINFORCE) or ``ga`` (the GA baseline).
      hidden: LSTM width (SLNAS: 256).
      lr: controller learning rate (SLNAS: 3.5e-5, too small to learn in a few hundred samples).
      optimizer: ``ranger`` (RAdam + Lookahead, the paper's) or ``adam``.
      entropy_weight: weight of the policy entropy in the reward (SLNAS: 1e-4).
      baseline_decay: ``d`` in the baseline move ``b <- b - d (b - R)`` (SLNAS: 0.05).
      temperature: logits are divided by it before the tanh bound (SLNAS: 5).
      tanh_constant: bound ``c`` of the connection logits, ``c * tanh(x / T)`` (SLNAS: 1.1).
      op_tanh_constant: bound of the op logits (SLNAS: 1.1 / 2.5 = 0.44).
      ga_population: GA members per generation (SLNAS: 200).
      ga_crossover: GA chance that a gene comes from the roulette-selected parent (SLNAS: 0.7).
      ga_mutation: GA chance that a gene position is redrawn per generation (SLNAS: 0.001).
    """

    kind: str = _f("lstm", choices=("lstm", "ga"))
    hidden: int = _f(256, min=1)
    lr: float = _f(3.5e-5, gt=0.0)
    optimizer: str = _f("ranger", choices=("ranger", "adam"))
    entropy_weight: float = _f(1e-4, min=0.0)
    baseline_decay: float = _f(0.05, min=0.0, max=1.0)
    temperature: float = _f(5.0, min=1e-6)
    tanh_constant: float = _f(1.1, min=1e-6)
    op_tanh_constant: float = _f(0.44, min=1e-6)
    ga_population: int = _f(200, min=2)
    ga_crossover: float = _f(0.7, min=0.0, max=1.0)
    ga_mutation: float = _f(0.001, min=0.0, max=1.0)


@dataclass(frozen=True)
class NagConfig:
    """[nag]: the NAG generator, its GAN training and RS-NAG (``nag``; NAG spec).

    Attributes:
      labels: where the labelled cells' accuracies come from: ``short`` (the benchmark's 12-epoch
        validation accuracies, a cheap estimate like the paper's supernet scores) or ``table`` (its
        final test accuracies, the figures the queries return: an oracle prior that makes
        comparisons with other methods at equal budgets unfair).
      pool: labelled cells drawn with the run seed (NAG: 4,000; 0 = every distinct cell).
      epochs / batch_size / lr / beta_1 / beta_2: LSGAN training (NAG: 200, 64, 2e-4, 0.5, 0.999).
      d_lr: the discriminator's lr (NAG: the same 2e-4).
      pretrain_epochs: maximum-likelihood (teacher-forced) epochs of the generator before the GAN
        epochs, Adam 1e-3 (not in NAG, which trains the GAN only: 0).
      pretrain_schedule: the likelihood epochs' learning rate: ``constant`` 1e-3, or ``cosine`` from 1e-3
        down to 0 over ``pretrain_epochs`` (set per epoch).
      node_units / graph_units / noise_dim / embed_dim / prop_layers / dropout: model widths
        (NAG: 250, 56, 100, 10, 3, 0.5).
      relax: what the discriminator sees of a generated cell in training: ``straight_through``
        (sampled cells, gradients of their relaxations) or ``soft`` (the probabilities, as the paper).
      edges: how a new node's incoming edges are decided: ``independent`` (one Bernoulli per earlier
        node from the same state, as the paper) or ``sequential`` (one at a time, each seeing the
        decisions before it, as DeepGMG).
      target_acc: accuracy class RS-NAG asks for (0 low, 1 medium, 2 high).
      target_params: parameter class it asks for (0 few, 1 medium, 2 many; -1 = as in the
        labelled cells of ``target_acc``).
      samples: cells generated per class for the quality report and per epoch.
      gen_batch: cells per generation call in RS-NAG.
      score_batches: held-out batches each pool pair is scored on by the supernet (``nag_supernet``).
      holdout: fraction of the training split held out to score pool pairs and RS-NAG candidates
        (``nag_supernet``; the test split is never used to choose).
      rs_candidates: generated pairs RS-NAG trains and compares (``nag_supernet``; NAG: 50).
      rs_epochs: epochs of each RS-NAG short training (``nag_supernet``; NAG: 50), with the
        ``[train]`` recipe otherwise.
    """

    labels: str = _f("short", choices=("short", "table"))
    pool: int = _f(4000, min=0)
    epochs: int = _f(200, min=0)
    batch_size: int = _f(64, min=1)
    lr: float = _f(2e-4, gt=0.0)
    d_lr: float = _f(2e-4, gt=0.0)
    pretrain_epochs: int = _f(0, min=0)
    pretrain_schedule: str = _f("constant", choices=("constant", "cosine"))
    beta_1: float = _f(0.5, min=0.0, max=0.9999)
    beta_2: float = _f(0.999, min=0.0, max=0.9999)
    node_units: int = _f(250, min=1)
    graph_units: int = _f(56, min=1)
    noise_dim: int = _f(100, min=1)
    embed_dim: int = _f(10, min=1)
    prop_layers: int = _f(3, min=1)
    dropout: float = _f(0.5, min=0.0, max=0.99)
    relax: str = _f("straight_through", choices=("straight_through", "soft"))
    edges: str = _f("independent", choices=("independent", "sequential"))
    target_acc: int = _f(2, min=0, max=2)
    target_params: int = _f(-1, min=-1, max=2)
    samples: int = _f(100, min=1)
    gen_batch: int = _f(256, min=1)
    score_batches: int = _f(4, min=1)
    holdout: float = _f(0.2, min=0.0, max=1.0)
    rs_candidates: int = _f(50, min=1)
    rs_epochs: int = _f(50, min=1)
