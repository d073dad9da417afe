"""NAG: GAN training steps per second and the generation of 1,000 cells, on NAS-Bench-201 DAGs."""

from __future__ import annotations

import time

import numpy as np

from perf.report import emit


def run(node_units: int = 250, batch: int = 64, steps: int = 20, cells: int = 1000, jit: bool = False,
        seed: int = 0, edges: str = "independent") -> None:
    """Emits ``nag_train`` (steps/s of one LSGAN step, first call apart), ``nag_pretrain`` (steps/s
    of one teacher-forced likelihood step) and ``nag_generate``
    (seconds for ``cells`` sampled cells in one traced call, and their validity)."""
    from tfnas.methods.nag import quality
    from tfnas.methods.nag.gan import CellData, GanTrainer
    from tfnas.methods.nag.models import DagDiscriminator, DagGenerator
    from tfnas.spaces.nb201.dag import NB201_DAG, all_dags, dag_lookup

    s = NB201_DAG
    adj, types = all_dags()
    idx = np.array(sorted(dag_lookup().values()))[: batch * steps]
    labels = np.random.default_rng(seed).integers(0, 3, (len(idx), 2))
    data = CellData.from_dags(adj[idx], types[idx], labels, s.num_types)
    gen = DagGenerator(s.num_types, s.max_nodes, s.input_codes, s.output_code, node_units=node_units, edges=edges,
                       seed=seed)
    disc = DagDiscriminator(s.num_types, node_units=node_units, seed=seed + 1)
    trainer = GanTrainer([gen], disc, batch_size=batch, seed=seed, jit_compile=jit)
    start = time.perf_counter()
    trainer.train_epoch(CellData(data.x[:batch], data.a[:batch], data.labels[:batch]), 0)  # trace + first step
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    out = trainer.train_epoch(data, 1)
    wall = time.perf_counter() - start
    emit("nag_train", node_units=node_units, edges=edges, batch=batch, steps=int(out["steps"]), jit=jit,
         steps_per_s=round(out["steps"] / wall, 2), first_call_s=round(first_s, 2))
    trainer.pretrain_epoch(CellData(data.x[:batch], data.a[:batch], data.labels[:batch]), 0)
    start = time.perf_counter()
    out = trainer.pretrain_epoch(data, 1)
    wall = time.perf_counter() - start
    emit("nag_pretrain", node_units=node_units, edges=edges, batch=batch, steps=int(out["steps"]), jit=jit,
         steps_per_s=round(out["steps"] / wall, 2))
    z = np.random.default_rng(seed).standard_normal((cells, 1, gen.noise_dim)).astype(np.float32)
    want = np.tile(np.array([[2, 1]], np.int32), (cells, 1))
    start = time.perf_counter()
    trainer.generate(z, want, np.array([1, 2]))
    first = time.perf_counter() - start
    start = time.perf_counter()
    (gx, ga), = trainer.generate(z, want, np.array([3, 4]))
    gen_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = quality.decode(gx, ga, s, dag_lookup())
    decode_s = time.perf_counter() - start
    emit("nag_generate", node_units=node_units, edges=edges, cells=cells, generate_s=round(gen_s, 3),
         first_call_s=round(first, 2), decode_s=round(decode_s, 3),
         valid_untrained=round(quality.sample_stats(decoded)["valid"], 3))


def supernet(batch: int = 64, steps: int = 5, archs: int = 3, channels: int = 20, layers: int = 11,
             rounds: int = 2, jit: bool = False, seed: int = 0) -> None:
    """Emits ``nag_supernet`` per sampled pair: ms per train step of NAG's single-path supernet
    (:class:`~tfnas.spaces.nasnet_dag.supernet.NasnetDagSupernet`) vs the standalone network of the
    same pair at the same size (``channels``, ``layers``, aux head), both with loss CE + 0.4 aux CE
    and :func:`~tfnas.train.supernet.masked_sgd` (momentum 0.9, decay 3e-4, clip 5) on one fixed
    random batch of 32x32 images; each side's figure is its best of ``rounds`` alternating blocks of
    ``steps`` steps. Target (issue): ``ratio <= 1.3``."""
    import tensorflow as tf

    from perf.supernet import _time_steps
    from tfnas.spaces.nasnet_dag import NasnetDagNetwork, NasnetDagSpace
    from tfnas.spaces.nasnet_dag.supernet import NasnetDagSupernet

    rng = np.random.default_rng(seed)
    space = NasnetDagSpace(channels=channels, layers=layers)
    pairs = [space.sample(rng) for _ in range(archs)]
    start = time.perf_counter()
    net = NasnetDagSupernet(10, (32, 32, 3), channels=channels, layers=layers, jit_compile=jit, seed=seed)
    build_s = time.perf_counter() - start
    images = tf.constant(rng.standard_normal((batch, 32, 32, 3)), tf.float32)
    labels = tf.one_hot(rng.integers(0, 10, batch), 10)
    lr = tf.constant(0.01)
    for arch in pairs:
        ids = net._ids(arch)
        start = time.perf_counter()
        float(net._train_fn(images, labels, ids, lr)[0])
        first_s = time.perf_counter() - start
        step = _standalone_step(NasnetDagNetwork, arch, channels, layers, jit, seed)
        float(step(images, labels, lr))
        sup, alone = [], []
        for _ in range(rounds):
            sup.append(_time_steps(lambda: net._train_fn(images, labels, ids, lr), steps))
            alone.append(_time_steps(lambda: step(images, labels, lr), steps))
        emit("nag_supernet", arch=str(arch), batch=batch, channels=channels, layers=layers, jit=jit,
             supernet_ms=round(min(sup), 1), standalone_ms=round(min(alone), 1), ratio=round(min(sup) / min(alone), 3),
             supernet_build_s=round(build_s, 1), supernet_first_step_s=round(first_s, 1),
             supernet_traces=net.trace_counts["train"], standalone_params=int(space.num_params(arch, 10, True)))


def _standalone_step(network, arch, channels: int, layers: int, jit: bool, seed: int):
    """A traced train step of the standalone network of ``arch``: CE + 0.4 aux CE, ``masked_sgd`` on all."""
    import keras
    import tensorflow as tf

    from tfnas.train.supernet import masked_sgd

    keras.utils.set_random_seed(seed)
    model = network(str(arch), 10, (32, 32, 3), channels, layers, auxiliary=True)
    model.build((None, 32, 32, 3))
    params = list(model.trainable_variables)
    buffers = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in params]

    @tf.function(jit_compile=jit, autograph=False)
    def step(x, y, lr):
        with tf.GradientTape() as tape:
            logits, aux = model(x, training=True)
            per_example = tf.nn.softmax_cross_entropy_with_logits(y, logits)
            loss = tf.reduce_mean(per_example) + 0.4 * tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(y, aux))
        masked_sgd(params, buffers, tape.gradient(loss, params), [True] * len(params), lr, 0.9, 3e-4, 5.0)
        return tf.reduce_sum(per_example)

    return step
