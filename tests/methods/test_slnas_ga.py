"""The SLNAS GA controller: roulette on accuracy², crossover and mutation rates, generations, determinism."""

import numpy as np
import pytest

from tfnas.methods.slnas import GeneticController, lite_gene_bounds


def _evaluate_generation(ga, fitness=lambda a: float(a.sum())):
    for _ in range(ga.population_size):
        arch, _ = ga.sample()
        ga.update(arch, fitness(arch))


def test_roulette_selects_in_proportion_to_squared_accuracy():
    ga = GeneticController([1000] * 3, population=4, seed=0)
    ga.population = np.arange(12, dtype=np.int32).reshape(4, 1, 3)  # members told apart by gene 0
    ga.fitness = np.array([0.0, 10.0, 20.0, 30.0])
    picks = np.concatenate([ga.select()[:2, 0, 0] // 3 for _ in range(4000)])
    freq = np.bincount(picks, minlength=4) / len(picks)
    np.testing.assert_allclose(freq, np.array([0, 100, 400, 900]) / 1400, atol=0.015)
    assert freq[0] == 0.0
    newcomers = ga.select()[2:]  # the other half: fresh random genomes
    assert newcomers.shape == (2, 1, 3) and not np.isin(newcomers[:, 0, 0], [0, 3, 6, 9]).all()


def test_crossover_keeps_the_parent_gene_with_probability_crossover():
    ga = GeneticController([2] * 50, cell_types=2, population=6, crossover=0.7, seed=1)
    ga.population = np.ones((6, 2, 50), np.int32)  # the mates
    children = np.stack([ga.cross(np.zeros((6, 2, 50), np.int32)) for _ in range(200)])
    mask = children[:, 0, 0, :]  # 1 = gene taken from the mate
    assert (children == mask[:, None, None, :]).all()  # one gene mask per generation, shared
    assert mask.mean() == pytest.approx(0.3, abs=0.02)


def test_mutation_redraws_gene_positions_at_the_mutation_rate():
    ga = GeneticController([1000] * 40, population=5, mutation=0.25, seed=2)
    genomes = np.zeros((5, 1, 40), np.int32)
    redrawn = np.stack([(ga.mutate(genomes) != 0).any(axis=(0, 1)) for _ in range(300)])
    assert redrawn.mean() == pytest.approx(0.25, abs=0.02)


def test_generation_advances_when_the_population_is_evaluated():
    ga = GeneticController(lite_gene_bounds(), cell_types=2, population=10, seed=3)
    first, info = ga.sample()
    assert info == {"generation": 0, "member": 0}
    np.testing.assert_array_equal(ga.sample()[0], first)  # the same member until it is updated
    with pytest.raises(ValueError, match="sample\\(\\) returned"):
        ga.update((first + 1) % 2, 50.0)
    _evaluate_generation(ga)
    assert ga.generation == 1 and ga.cursor == 0 and np.isnan(ga.fitness).all()
    for _ in range(3):
        _evaluate_generation(ga)
    bounds = np.array(lite_gene_bounds())
    assert ga.population.shape == (10, 2, 20)
    assert (ga.population >= 0).all() and (ga.population < bounds).all()
    assert tuple(bounds[:8]) == (2, 5, 2, 5, 3, 5, 3, 5)


def test_same_seed_same_search_and_exact_resume(tmp_path):
    a = GeneticController([5] * 6, population=8, seed=4)
    b = GeneticController([5] * 6, population=8, seed=4)
    _evaluate_generation(a)
    _evaluate_generation(b)
    assert np.array_equal(a.population, b.population)  # the same seed, the same next generation
    d = GeneticController([5] * 6, population=8, seed=5)
    _evaluate_generation(d)
    assert not np.array_equal(b.population, d.population)
    for _ in range(3):  # stop mid-generation
        arch, _ = a.sample()
        a.update(arch, float(arch.sum()))
    np.savez(tmp_path / "ga.npz", **a.get_state())
    expected = []
    for _ in range(20):
        arch, _ = a.sample()
        expected.append(arch.tolist())
        a.update(arch, float(arch.sum()))
    c = GeneticController([5] * 6, population=8, seed=123)
    with np.load(tmp_path / "ga.npz") as saved:
        c.set_state(dict(saved))
    got = []
    for _ in range(20):
        arch, _ = c.sample()
        got.append(arch.tolist())
        c.update(arch, float(arch.sum()))
    assert got == expected and c.generation == a.generation


def test_bad_arguments_fail_early():
    with pytest.raises(ValueError, match="crossover"):
        GeneticController([5] * 6, crossover=1.5)
    with pytest.raises(ValueError, match="population"):
        GeneticController([5] * 6, population=1)
