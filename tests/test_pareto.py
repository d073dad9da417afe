"""Pareto fronts and 2-D hypervolume on hand-made points with known answers."""

import numpy as np
import pytest

from tfnas.pareto import crowding_distance, hypervolume, nondominated_ranks, nsga_keep, pareto_front

# (accuracy, latency): B dominates C; A dominates E; F duplicates B (the lower index is kept).
ACC = np.array([90.0, 80.0, 70.0, 60.0, 90.0, 80.0])
LAT = np.array([10.0, 5.0, 8.0, 1.0, 12.0, 5.0])


def test_front_of_a_hand_made_set():
    assert pareto_front(ACC, LAT).tolist() == [3, 1, 0]  # D, B, A by latency
    assert pareto_front(np.array([1.0]), np.array([2.0])).tolist() == [0]
    assert pareto_front(np.array([]), np.array([])).tolist() == []
    with pytest.raises(ValueError):
        pareto_front(ACC, LAT[:3])


def test_hypervolume_of_a_hand_made_set():
    # normalised by acc 50..100, lat 0..20: D (a .2, l .05), B (.6, .25), A (.8, .5); reference (0, 1)
    # HV = (.25 - .05) * .2 + (.5 - .25) * .6 + (1 - .5) * .8 = .04 + .15 + .40
    assert hypervolume(ACC, LAT, (50, 100), (0, 20)) == pytest.approx(0.59)
    assert hypervolume([100.0], [0.0], (50, 100), (0, 20)) == pytest.approx(1.0)  # the ideal corner
    assert hypervolume([50.0], [20.0], (50, 100), (0, 20)) == 0.0  # the reference point itself
    assert hypervolume([], [], (50, 100), (0, 20)) == 0.0
    # adding a dominated point changes nothing; a non-dominated one adds area
    assert hypervolume(np.append(ACC, 55.0), np.append(LAT, 15.0), (50, 100), (0, 20)) == pytest.approx(0.59)
    assert hypervolume(np.append(ACC, 95.0), np.append(LAT, 15.0), (50, 100), (0, 20)) > 0.59
    with pytest.raises(ValueError):
        hypervolume(ACC, LAT, (100, 50), (0, 20))


def test_hypervolume_matches_a_grid_count():
    rng = np.random.default_rng(3)
    acc, lat = rng.uniform(0, 1, 25), rng.uniform(0, 1, 25)
    n = 800
    g = (np.arange(n) + 0.5) / n  # cell centres of the unit square
    gl, ga = np.meshgrid(g, g, indexing="ij")
    dominated = np.zeros((n, n), bool)
    for a, lt in zip(acc, lat):
        dominated |= (gl >= lt) & (ga <= a)
    assert hypervolume(acc, lat, (0, 1), (0, 1)) == pytest.approx(dominated.mean(), abs=3e-3)


def test_front_is_exactly_the_non_dominated_points():
    rng = np.random.default_rng(0)
    acc, lat = rng.integers(0, 20, 200).astype(float), rng.integers(0, 20, 200).astype(float)
    front = set(pareto_front(acc, lat).tolist())
    for i in range(len(acc)):
        dominated = any(acc[j] >= acc[i] and lat[j] <= lat[i] and (acc[j] > acc[i] or lat[j] < lat[i])
                        for j in range(len(acc)))
        duplicate_of_earlier = any(acc[j] == acc[i] and lat[j] == lat[i] for j in range(i))
        assert (i in front) == (not dominated and not duplicate_of_earlier), i


def test_nondominated_sorting_and_crowding_of_a_hand_made_set():
    # front 0: A, B, D and F (F equals B: neither dominates the other); front 1: C (by B), E (by A)
    assert nondominated_ranks(ACC, LAT).tolist() == [0, 0, 1, 0, 1, 0]
    # front 0 as (acc, lat): A (90, 10), B (80, 5), D (60, 1), F (80, 5); ranges 30 and 9
    dist = crowding_distance(np.array([90.0, 80.0, 60.0, 80.0]), np.array([10.0, 5.0, 1.0, 5.0]))
    assert np.isinf(dist[0]) and np.isinf(dist[2])
    assert dist[1] == pytest.approx(20 / 30 + 4 / 9) and dist[3] == pytest.approx(10 / 30 + 5 / 9)
    assert np.all(np.isinf(crowding_distance(np.array([1.0, 2.0]), np.array([2.0, 1.0]))))


def test_nsga_keeps_whole_fronts_then_the_least_crowded():
    assert nsga_keep(ACC, LAT, 3).tolist() == [0, 1, 3]  # the two extremes, then B over its twin F
    assert nsga_keep(ACC, LAT, 5).tolist() == [0, 1, 2, 3, 5]  # front 0, then C (tie: the earlier one)
    assert nsga_keep(ACC, LAT, 6).tolist() == list(range(6))
    assert nsga_keep(ACC, LAT, 10).tolist() == list(range(6))
