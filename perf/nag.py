"""NAG: GAN training steps per second and the generation of 1,000 cells, on NAS-Bench-201 DAGs."""

from __future__ import annotations

import time

import numpy as np

from perf.report import emit


def run(node_units: int = 250, batch: int = 64, steps: int = 20, cells: int = 1000, jit: bool = False,
        seed: int = 0) -> None:
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
    gen = DagGenerator(s.num_types, s.max_nodes, s.input_codes, s.output_code, node_units=node_units, seed=seed)
    disc = DagDiscriminator(s.num_types, node_units=node_units, seed=seed + 1)
    trainer = GanTrainer([gen], disc, batch_size=batch, seed=seed, jit_compile=jit)
    start = time.perf_counter()
    trainer.train_epoch(CellData(data.x[:batch], data.a[:batch], data.labels[:batch]), 0)  # trace + first step
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    out = trainer.train_epoch(data, 1)
    wall = time.perf_counter() - start
    emit("nag_train", node_units=node_units, batch=batch, steps=int(out["steps"]), jit=jit,
         steps_per_s=round(out["steps"] / wall, 2), first_call_s=round(first_s, 2))
    trainer.pretrain_epoch(CellData(data.x[:batch], data.a[:batch], data.labels[:batch]), 0)
    start = time.perf_counter()
    out = trainer.pretrain_epoch(data, 1)
    wall = time.perf_counter() - start
    emit("nag_pretrain", node_units=node_units, batch=batch, steps=int(out["steps"]), jit=jit,
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
    emit("nag_generate", node_units=node_units, cells=cells, generate_s=round(gen_s, 3),
         first_call_s=round(first, 2), decode_s=round(decode_s, 3),
         valid_untrained=round(quality.sample_stats(decoded)["valid"], 3))
