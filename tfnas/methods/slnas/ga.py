"""The GA controller, SLNAS' comparison baseline, behind the same interface as the LSTM controllers.

A genome is an integer array ``[cell_types, genes]`` whose gene ``j`` of every cell type lies in
``[0, bounds[j])`` (lite cells: ``2, 5, 2, 5, 3, 5, ...``, i.e. the inputs of node ``n`` below
``n + 2`` and ops below 5; NAS-Bench-201: ``5`` on each of the 6 edges). One generation, as the
SLNAS code's ``nas_ga`` runs it:

1. every member of the population is evaluated once (its accuracy, %, is its fitness);
2. selection: ``population // 2`` parents drawn with replacement by roulette on
   ``fitness^2 / sum(fitness^2)``, plus ``population - population // 2`` new random genomes;
3. crossover: one mask over the gene positions, drawn per generation and shared by every child
   and cell type, keeps the parent's gene with probability ``crossover`` (0.7) and takes the gene
   of the old population, shuffled, otherwise (uniform crossover);
4. mutation: one mask over the gene positions, again shared, replaces a gene by a random value
   with probability ``mutation`` (0.001); every ``extra_mutation_every``-th generation, the first
   included, mutation runs twice.

``sample()`` returns the next unevaluated member; ``update(arch, accuracy)`` records its fitness,
and the generation advances when the last member is evaluated. ``next_batch(n)`` hands out the
next members up to the end of the generation at once, for evaluation side by side (SLNAS' rewards
on worker processes). Randomness comes from one numpy
``Generator`` whose state is part of :meth:`GeneticController.get_state`.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np


def lite_gene_bounds(num_nodes: int = 5, num_ops: int = 5) -> Tuple[int, ...]:
    """Gene bounds of one lite cell: ``(n + 2, num_ops, n + 2, num_ops)`` for each node ``n``."""
    return tuple(b for n in range(num_nodes) for b in (n + 2, num_ops, n + 2, num_ops))


class GeneticController:
    """Genetic algorithm over integer genomes (see the module docstring for one generation).

    Example:

    >>> ga = GeneticController(lite_gene_bounds(), cell_types=2, population=200, seed=0)
    >>> arch, info = ga.sample()        # np.int32 [2, 20]
    >>> stats = ga.update(arch, 61.0)   # its accuracy (%)

    Args:
      gene_bounds: exclusive upper bound of every gene of one cell type.
      cell_types: cell types per genome (rows).
      population: members per generation (SLNAS: 200).
      crossover: probability that a gene position keeps the selected parent's gene (0.7).
      mutation: probability that a gene position is redrawn (0.001).
      extra_mutation_every: generations ``g`` with ``g % extra_mutation_every == 0`` mutate twice.
      seed: seed of the numpy ``Generator``.
    """

    def __init__(self, gene_bounds: Sequence[int], cell_types: int = 1, population: int = 200,
                 crossover: float = 0.7, mutation: float = 0.001, extra_mutation_every: int = 10, seed: int = 0):
        self.bounds = np.asarray([int(b) for b in gene_bounds], np.int64)
        if self.bounds.size == 0 or self.bounds.min() < 1:
            raise ValueError(f"gene bounds must be >= 1; got {list(gene_bounds)}")
        if int(cell_types) < 1:
            raise ValueError(f"GeneticController cell_types must be >= 1; Received: cell_types={cell_types}")
        if int(population) < 2:
            raise ValueError(f"GeneticController population must be >= 2; Received: population={population}")
        for name, value in (("crossover", crossover), ("mutation", mutation)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"GeneticController {name} must be in [0, 1]; Received: {name}={value}")
        if int(extra_mutation_every) < 1:
            raise ValueError(f"extra_mutation_every must be >= 1; Received: {extra_mutation_every}")
        self.cell_types, self.population_size = int(cell_types), int(population)
        self.crossover, self.mutation = float(crossover), float(mutation)
        self.extra_mutation_every = int(extra_mutation_every)
        self.arch_shape = (self.cell_types, int(self.bounds.size))
        self._rng = np.random.default_rng(int(seed))
        self.population = self._random(self.population_size)
        self.fitness = np.full(self.population_size, np.nan)
        self.cursor, self.generation = 0, 0

    def _random(self, n: int) -> np.ndarray:
        """``n`` uniformly random genomes, int32 ``[n, cell_types, genes]``."""
        return self._rng.integers(0, self.bounds, size=(n,) + self.arch_shape).astype(np.int32)

    # ---- the controller interface ---------------------------------------------------------------

    def sample(self) -> Tuple[np.ndarray, Dict[str, int]]:
        """The next member to evaluate (the same one until it is updated), with its place."""
        return self.population[self.cursor].copy(), {"generation": self.generation, "member": self.cursor}

    def next_batch(self, n: int) -> List[np.ndarray]:
        """The next ``min(n, population - cursor)`` unevaluated members, in the order :meth:`sample`
        returns them: their evaluations do not depend on each other (the population evolves only
        once the last member of the generation has its fitness), so a caller may evaluate them side
        by side and then :meth:`update` each in this order."""
        if int(n) < 1:
            raise ValueError(f"next_batch needs n >= 1; got {n}")
        stop = min(self.population_size, self.cursor + int(n))
        return [self.population[k].copy() for k in range(self.cursor, stop)]

    def update(self, arch: Any, accuracy: float) -> Dict[str, float]:
        """Records ``accuracy`` (%) as the fitness of the member :meth:`sample` returned; evolves
        the population once every member has one. Returns ``reward``, ``generation``, ``member``."""
        arch = np.asarray(arch)
        if arch.shape != self.arch_shape or not np.array_equal(arch, self.population[self.cursor]):
            raise ValueError("update() must receive the architecture sample() returned last "
                             f"(member {self.cursor} of generation {self.generation})")
        if not np.isfinite(accuracy) or accuracy < 0:
            raise ValueError(f"fitness must be a finite accuracy >= 0; got {accuracy}")
        self.fitness[self.cursor] = float(accuracy)
        out = {"reward": float(accuracy), "generation": float(self.generation), "member": float(self.cursor)}
        self.cursor += 1
        if self.cursor == self.population_size:
            self.evolve()
        return out

    # ---- one generation ------------------------------------------------------------------------

    def select(self) -> np.ndarray:
        """Roulette on fitness² (half the parents) + new random genomes (the other half)."""
        n = self.population_size
        weight = np.square(self.fitness)
        p = weight / weight.sum() if weight.sum() > 0 else np.full(n, 1.0 / n)
        chosen = self._rng.choice(n, size=n // 2, replace=True, p=p)
        return np.concatenate([self.population[chosen], self._random(n - n // 2)])

    def cross(self, parents: np.ndarray) -> np.ndarray:
        """Uniform crossover of ``parents`` with the shuffled old population (one shared gene mask)."""
        mates = self.population[self._rng.permutation(self.population_size)]
        from_mate = self._rng.random(self.bounds.size) >= self.crossover
        return np.where(from_mate, mates, parents).astype(np.int32)

    def mutate(self, genomes: np.ndarray) -> np.ndarray:
        """Redraws every gene position of a shared mask (probability ``mutation`` each)."""
        fresh = self._random(len(genomes))
        redraw = self._rng.random(self.bounds.size) < self.mutation
        return np.where(redraw, fresh, genomes).astype(np.int32)

    def evolve(self) -> None:
        """Selection, crossover and mutation: the next generation, all members unevaluated."""
        if np.isnan(self.fitness).any():
            raise RuntimeError("evolve() needs the fitness of every member")
        children = self.mutate(self.cross(self.select()))
        if self.generation % self.extra_mutation_every == 0:
            children = self.mutate(children)
        self.population, self.fitness = children, np.full(self.population_size, np.nan)
        self.cursor, self.generation = 0, self.generation + 1

    # ---- state -----------------------------------------------------------------------------------

    def get_state(self) -> Dict[str, np.ndarray]:
        """Population, fitness, position and the generator state (numpy arrays, np.savez-able)."""
        return {"population": self.population.copy(), "fitness": self.fitness.copy(),
                "cursor": np.array(self.cursor), "generation": np.array(self.generation),
                "rng": np.array(json.dumps(self._rng.bit_generator.state))}

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        """Restores :meth:`get_state`'s output (of a controller built with the same arguments)."""
        population = np.asarray(state["population"], np.int32)
        if population.shape != (self.population_size,) + self.arch_shape:
            raise ValueError(f"GA state population has shape {population.shape}; "
                             f"expected {(self.population_size,) + self.arch_shape}")
        self.population, self.fitness = population.copy(), np.asarray(state["fitness"], np.float64).copy()
        self.cursor, self.generation = int(state["cursor"]), int(state["generation"])
        self._rng.bit_generator.state = json.loads(str(state["rng"]))
