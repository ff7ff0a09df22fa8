"""Balanced Forman curvature and SDRF against exact oracles (sdrf.md §4)."""

from __future__ import annotations

import json
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from framekd.errors import ConfigError, GraphError
from framekd.rewire import (
    SDRF,
    SDRFSpec,
    balanced_forman_curvature,
    sdrf,
    sdrf_candidates,
    sdrf_preset,
    spectral_gap,
)
from helpers import (
    complete_pairs,
    cycle_pairs,
    dense_laplacian,
    pairs_to_index,
    random_pairs,
    undirected_index,
)

# ---------------------------------------------------------------------------------------
# Oracle: Definition 1 written directly with Python sets and exact fractions.
# ---------------------------------------------------------------------------------------


def brute_force_curvature(edges, n):
    nb = [set() for _ in range(n)]
    for a, b in edges:
        if a != b:
            nb[a].add(b)
            nb[b].add(a)
    out = {}
    for i in range(n):
        for j in nb[i]:
            di, dj = len(nb[i]), len(nb[j])
            if min(di, dj) == 1:
                out[(i, j)] = Fraction(0)
                continue
            ball_i, ball_j = nb[i] | {i}, nb[j] | {j}
            tri = nb[i] & nb[j]
            # 4-cycle i-k-w-j-i without diagonals: k on i's side, w on j's side.
            wit_i = {k: (nb[k] & nb[j]) - ball_i for k in nb[i] - ball_j}
            wit_j = {w: (nb[w] & nb[i]) - ball_j for w in nb[j] - ball_i}
            sq_i = [k for k, s in wit_i.items() if s]
            sq_j = [w for w, s in wit_j.items() if s]
            gamma = max([len(s) for s in wit_i.values()] + [len(s) for s in wit_j.values()]
                        + [0])
            ric = (Fraction(2, di) + Fraction(2, dj) - 2 + Fraction(2 * len(tri), max(di, dj))
                   + Fraction(len(tri), min(di, dj)))
            if sq_i:
                ric += Fraction(len(sq_i) + len(sq_j), gamma * max(di, dj))
            out[(i, j)] = ric
    return out


def curvature_dict(edges, n):
    ei, curv = balanced_forman_curvature(pairs_to_index(edges), n)
    return {(a, b): c for (a, b), c in zip(ei.t().tolist(), curv.tolist(), strict=True)}


BRIDGE = [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (4, 5)]
HOUSE = [(0, 1), (0, 2), (1, 3), (2, 3), (2, 4), (3, 4)]


def assert_values(edges, n, expected):
    got = curvature_dict(edges, n)
    for (a, b), value in expected.items():
        assert got[(a, b)] == pytest.approx(float(value), abs=1e-12), (a, b)
        assert got[(b, a)] == got[(a, b)]


# ---------------------------------------------------------------------------------------
# Worked examples (sdrf.md §4)
# ---------------------------------------------------------------------------------------


def test_c4_every_edge_is_one():
    assert_values(cycle_pairs(4), 4, {e: 1 for e in cycle_pairs(4)[:3]} | {(0, 3): 1})


def test_k4_every_edge_is_four_thirds():
    assert_values(complete_pairs(4), 4, {e: Fraction(4, 3) for e in complete_pairs(4)})


def test_p4_pendant_edges_are_zero_by_the_min_degree_rule():
    assert_values([(0, 1), (1, 2), (2, 3)], 4, {(0, 1): 0, (1, 2): 0, (2, 3): 0})


def test_bridge_between_two_triangles_is_the_unique_minimum():
    expected = {(0, 1): Fraction(3, 2), (0, 2): Fraction(5, 6), (1, 2): Fraction(5, 6),
                (2, 3): Fraction(-2, 3), (3, 4): Fraction(5, 6), (3, 5): Fraction(5, 6),
                (4, 5): Fraction(3, 2)}
    assert_values(BRIDGE, 6, expected)
    got = curvature_dict(BRIDGE, 6)
    assert min(got, key=lambda e: (got[e], e)) == (2, 3)


def test_house_graph():
    expected = {(0, 1): 1, (0, 2): Fraction(1, 3), (1, 3): Fraction(1, 3), (2, 3): 1,
                (2, 4): Fraction(5, 6), (3, 4): Fraction(5, 6)}
    assert_values(HOUSE, 5, expected)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_complete_graph_is_n_over_n_minus_one(n):
    for got in curvature_dict(complete_pairs(n), n).values():
        assert got == pytest.approx(n / (n - 1), abs=1e-12)


@pytest.mark.parametrize(("n", "value"), [(3, 1.5), (4, 1.0), (5, 0.0), (6, 0.0), (8, 0.0)])
def test_cycles(n, value):
    for got in curvature_dict(cycle_pairs(n), n).values():
        assert got == pytest.approx(value, abs=1e-12)


def test_torus_grid_is_flat_and_interior_grid_edges_are_flat():
    side = 7
    node = lambda r, c: (r % side) * side + (c % side)  # noqa: E731
    torus = [(node(r, c), node(r, c + 1)) for r in range(side) for c in range(side)]
    torus += [(node(r, c), node(r + 1, c)) for r in range(side) for c in range(side)]
    for got in curvature_dict(torus, side * side).values():
        assert got == pytest.approx(0.0, abs=1e-12)
    grid = [(node(r, c), node(r, c + 1)) for r in range(side) for c in range(side - 1)]
    grid += [(node(r, c), node(r + 1, c)) for r in range(side - 1) for c in range(side)]
    got = curvature_dict(grid, side * side)
    assert got[(node(3, 3), node(3, 4))] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("r", [1, 2, 3, 4])
def test_regular_tree_interior_edge(r):
    # (r+1)-regular tree of depth 4: the root's edges are interior.
    edges, frontier, n = [], [0], 1
    for depth in range(4):
        nxt = []
        for v in frontier:
            for _ in range(r + 1 if depth == 0 else r):
                edges.append((v, n))
                nxt.append(n)
                n += 1
        frontier = nxt
    got = curvature_dict(edges, n)
    assert got[(0, 1)] == pytest.approx(4 / (r + 1) - 2, abs=1e-12)


def test_output_is_canonical_symmetric_and_float64():
    ei, curv = balanced_forman_curvature(torch.tensor([[1, 0, 2, 2], [0, 2, 1, 2]]), 3)
    assert ei.tolist() == [[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]]
    assert curv.dtype == torch.float64 and curv.shape == (6,)


def test_empty_graph_and_bad_input():
    ei, curv = balanced_forman_curvature(torch.zeros((2, 0), dtype=torch.long), 4)
    assert ei.shape == (2, 0) and curv.numel() == 0
    with pytest.raises(GraphError, match="node index 5"):
        balanced_forman_curvature(torch.tensor([[0], [5]]), 3)


# ---------------------------------------------------------------------------------------
# Property test against the oracle on random graphs
# ---------------------------------------------------------------------------------------


@st.composite
def random_graphs(draw):
    n = draw(st.integers(2, 12))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    mask = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    return n, [p for p, keep in zip(pairs, mask, strict=True) if keep]


@settings(max_examples=60, deadline=None)
@given(random_graphs())
def test_curvature_matches_the_definition_on_random_graphs(graph):
    n, edges = graph
    if not edges:
        return
    oracle = brute_force_curvature(edges, n)
    got = curvature_dict(edges, n)
    assert set(got) == set(oracle)
    for e, value in oracle.items():
        assert got[e] == pytest.approx(float(value), abs=1e-12), e


@settings(max_examples=40, deadline=None)
@given(random_graphs(), st.integers(0, 10_000))
def test_candidate_gains_match_recomputation(graph, pick):
    n, edges = graph
    if not edges:
        return
    x, y = edges[pick % len(edges)]
    pairs, gains = sdrf_candidates(pairs_to_index(edges), n, (x, y))
    nb = [set() for _ in range(n)]
    for a, b in edges:
        nb[a].add(b)
        nb[b].add(a)
    expected = sorted({tuple(sorted((k, l))) for k in nb[x] | {x} for l in nb[y] | {y}
                       if k != l and l not in nb[k]})
    assert [tuple(p) for p in pairs.tolist()] == expected
    before = brute_force_curvature(edges, n)[(x, y)]
    for (k, l), gain in zip(pairs.tolist(), gains.tolist(), strict=True):
        after = brute_force_curvature(edges + [(k, l)], n)[(x, y)]
        assert gain == pytest.approx(float(after - before), abs=1e-12), (k, l)


# ---------------------------------------------------------------------------------------
# SDRF
# ---------------------------------------------------------------------------------------


def test_one_step_oracle_on_the_bridge_graph():
    pairs, gains = sdrf_candidates(pairs_to_index(BRIDGE), 6, (2, 3))
    assert [tuple(p) for p in pairs.tolist()] == [(0, 3), (0, 4), (0, 5), (1, 3), (1, 4),
                                                   (1, 5), (2, 4), (2, 5)]
    assert gains.tolist() == pytest.approx([2 / 3] * 8, abs=1e-12)
    # Uniform softmax: every candidate is drawn for some seed, and the first step
    # targets the bridge.
    drawn = set()
    for seed in range(60):
        _, report = sdrf(undirected_index(BRIDGE), 6, iterations=1, tau=50.0, seed=seed)
        assert report.steps[0]["target"] == [2, 3]
        assert report.steps[0]["target_before"] == pytest.approx(-2 / 3)
        assert report.steps[0]["target_after"] == pytest.approx(0.0, abs=1e-12)
        drawn.add(tuple(report.added[0]))
    assert drawn == {tuple(p) for p in pairs.tolist()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdrf_incremental_curvature_equals_full_recomputation(seed):
    edges = random_pairs(30, 0.15, seed)
    out, report = sdrf(undirected_index(edges), 30, iterations=25, tau=2.0,
                       removal_bound=0.8 if seed else None, seed=seed)
    ei, curv = balanced_forman_curvature(out, 30)
    assert torch.equal(ei, out)  # exact: integer edge indices
    # Incremental updates and a full recomputation sum in different orders.
    torch.testing.assert_close(report.curvature, curv, rtol=0, atol=1e-12)
    assert report.curvature_min_after == pytest.approx(float(curv.min()))


@pytest.mark.parametrize("density,bound", [(0.2, None), (0.35, 0.2), (0.5, -0.1)])
def test_incremental_curvature_is_exact_after_every_step(density, bound):
    # Dense graphs with a low C+ remove often, which exercises the exact fallback
    # when the toggled row or column held the 4-cycle maximum.
    edges = undirected_index(random_pairs(24, density, 7))
    for steps in range(1, 13):
        out, report = sdrf(edges, 24, iterations=steps, tau=1.0, removal_bound=bound, seed=3)
        torch.testing.assert_close(report.curvature, balanced_forman_curvature(out, 24)[1],
                                   rtol=0, atol=1e-12, msg=lambda m, s=steps: f"{m}\nsteps={s}")
        if bound is not None and steps == 12:
            assert report.removed


def test_sdrf_closing_a_path_into_a_triangle():
    # After the edit every neighbour's neighbourhood lies inside B_1: no 4-cycle pairs.
    out, report = sdrf(undirected_index([(0, 1), (1, 2)]), 3, iterations=1, tau=1.0)
    assert report.added == [(0, 2)]
    torch.testing.assert_close(report.curvature, torch.full((6,), 1.5, dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_sdrf_output_is_symmetric_without_self_loops_and_tracks_its_edits():
    edges = random_pairs(40, 0.12, 5)
    out, report = sdrf(undirected_index(edges), 40, iterations=30, tau=1.0,
                       removal_bound=0.3, seed=3)
    assert (out[0] != out[1]).all()
    pairs = set(map(tuple, out.t().tolist()))
    assert all((b, a) in pairs for a, b in pairs)
    final = {tuple(sorted(e)) for e in pairs}
    start = {tuple(sorted(e)) for e in edges}
    for a, b in report.added:
        start.add((a, b))
        assert a < b
    for a, b in report.removed:
        start.discard((a, b))
    assert final == start
    assert report.edges_after == len(final)
    assert report.added and report.removed


def test_same_seed_same_graph_and_different_seed_differs():
    edges = undirected_index(random_pairs(40, 0.12, 7))
    runs = [sdrf(edges, 40, iterations=20, tau=0.5, removal_bound=1.2, seed=s)
            for s in (11, 11, 12)]
    assert torch.equal(runs[0][0], runs[1][0])  # exact: same seed, same code path, same input
    assert runs[0][1].added == runs[1][1].added
    assert runs[0][1].added != runs[2][1].added


def test_removal_bound_is_respected():
    edges = undirected_index(random_pairs(30, 0.2, 9))
    bound = 0.3
    _, report = sdrf(edges, 30, iterations=40, tau=1.0, removal_bound=bound, seed=0)
    assert report.removed
    for step in report.steps:
        if step["removed"] is not None:
            assert step["removed_curvature"] > bound
    _, none = sdrf(edges, 30, iterations=40, tau=1.0, removal_bound=None, seed=0)
    assert none.removed == []


def test_targets_are_the_most_negative_edge():
    edges = undirected_index(random_pairs(25, 0.2, 4))
    current = edges
    for seed in range(5):
        ei, curv = balanced_forman_curvature(current, 25)
        upper = ei[0] < ei[1]
        low = float(curv[upper].min())
        first = ei[:, upper][:, (curv[upper] == low).nonzero()[0, 0]].tolist()
        current, report = sdrf(current, 25, iterations=1, tau=1.0, seed=seed)
        assert report.steps[0]["target"] == first
        assert report.steps[0]["target_before"] == pytest.approx(low)


def test_stops_when_nothing_can_be_added_or_removed():
    # A single edge: no candidate, and curvature 0 is never above C+ = 0.5.
    _, report = sdrf(torch.tensor([[0, 1], [1, 0]]), 2, iterations=10, tau=1.0,
                     removal_bound=0.5)
    assert report.iterations_run == 0 and report.stop_reason == "converged"


def test_report_is_json_serialisable():
    _, report = sdrf(undirected_index(BRIDGE), 6, iterations=3, tau=1.0, removal_bound=1.0, seed=1)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["iterations_run"] == len(data["steps"]) == 3
    assert data["curvature_min_before"] == pytest.approx(-2 / 3)
    assert "curvature" not in data and data["timings"]["total_s"] >= 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"iterations": -1, "tau": 1.0}, "iterations"),
     ({"iterations": 1.5, "tau": 1.0}, "iterations"),
     ({"iterations": 5, "tau": -0.1}, "tau"),
     ({"iterations": 5, "tau": math.inf}, "tau"),
     ({"iterations": 5, "tau": 1.0, "removal_bound": math.nan}, "removal_bound"),
     ({"iterations": 5, "tau": 1.0, "seed": -3}, "seed")],
)
def test_invalid_arguments_are_rejected(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        sdrf(undirected_index(BRIDGE), 6, **kwargs)
    with pytest.raises(ConfigError, match=match):
        SDRF(**kwargs)


def test_transform_returns_rewired_copy():
    data = Data(x=torch.randn(6, 3), edge_index=undirected_index(BRIDGE), num_nodes=6)
    out = SDRF(iterations=2, tau=1.0, seed=0)(data)
    assert out.edge_index.size(1) == data.edge_index.size(1) + 4
    # exact: x is passed through untouched
    assert out.sdrf_report.added and torch.equal(out.x, data.x)
    assert data.edge_index.size(1) == 14  # the input is untouched


def test_directed_input_warns_and_is_symmetrised():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, _ = sdrf(pairs_to_index(BRIDGE), 6, iterations=0, tau=1.0)
    assert any("symmetrises" in str(w.message) for w in caught)
    assert out.size(1) == 14


def test_presets_are_provisional_values_and_unknown_names_fail():
    assert sdrf_preset("Cornell") == {"iterations": 126, "tau": 145.0, "removal_bound": 0.88}
    assert sdrf_preset("squirrel")["iterations"] == 1396
    with pytest.raises(ConfigError, match="no SDRF preset"):
        sdrf_preset("computers")


@pytest.mark.parametrize("n", [5, 10, 100])
def test_spectral_gap_of_cycles_matches_closed_form(n):
    assert spectral_gap(undirected_index(cycle_pairs(n)), n) == pytest.approx(
        1 - math.cos(2 * math.pi / n), abs=1e-8)


def test_spectral_gap_matches_dense_and_uses_largest_component():
    edges = random_pairs(90, 0.08, 2)
    nb = {v for e in edges for v in e}
    assert len(nb) == 90  # connected enough to have no isolated node for this seed
    got = spectral_gap(undirected_index(edges), 90)
    dense_gap = np.linalg.eigvalsh(dense_laplacian(undirected_index(edges), 90))[1]
    assert got == pytest.approx(dense_gap, abs=1e-8)
    # Adding a disjoint triangle does not change the reported (largest-component) gap.
    extra = [(90, 91), (91, 92), (90, 92)]
    assert spectral_gap(undirected_index(edges + extra), 93) == pytest.approx(got, abs=1e-8)


# ---------------------------------------------------------------------------------------
# framekd rewire
# ---------------------------------------------------------------------------------------


def test_cli_rewire_writes_graph_report_and_histogram(tmp_path, capsys):
    from framekd.cli import main
    from framekd.data import load_graph_dir
    from framekd.io import load_tensors, read_json

    out = tmp_path / "out"
    code = main(["rewire", "--dataset", "csbm:n=200,seed=3", "--iterations", "8", "--tau", "2",
                 "--removal-bound", "0.4", "--seed", "5", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "spectral gap" in printed and "min curvature" in printed
    report = read_json(out / "report.json")
    tensors = load_tensors(out / "edge_index.safetensors")
    ei = tensors["edge_index"]
    assert report["sdrf"]["iterations_run"] == 8
    added, removed = len(report["sdrf"]["added"]), len(report["sdrf"]["removed"])
    assert ei.size(1) // 2 == report["sdrf"]["edges_before"] + added - removed
    _, curv = balanced_forman_curvature(ei, 200)
    # The saved curvature is SDRF's incremental one; curv is a full recomputation.
    torch.testing.assert_close(tensors["curvature"], curv, rtol=0, atol=1e-12)
    assert (out / "curvature.png").read_bytes()[:4] == b"\x89PNG"
    # exact: integer edge indices read back from the saved graph
    assert torch.equal(load_graph_dir(out / "graph").edge_index, ei)


def test_cli_rewire_needs_settings_without_a_preset(tmp_path, capsys):
    from framekd.cli import main

    code = main(["rewire", "--dataset", "csbm:n=50", "--out", str(tmp_path)])
    assert code == 2
    assert "--iterations and --tau" in capsys.readouterr().err


def test_batched_curvature_equals_single_batch(monkeypatch):
    import framekd.rewire.curvature as rewire

    edges = undirected_index(random_pairs(60, 0.1, 8))
    _, whole = balanced_forman_curvature(edges, 60)
    # Many tiny batches; each is past the dense-table size, so membership is looked up
    # in sorted keys and the product's columns are renumbered.
    monkeypatch.setattr(rewire, "_BATCH_ENTRIES", 64)
    _, batched = balanced_forman_curvature(edges, 60)
    torch.testing.assert_close(whole, batched, rtol=0, atol=1e-12)  # other summation order
    out, report = sdrf(edges, 60, iterations=20, tau=3.0, removal_bound=0.5)
    torch.testing.assert_close(report.curvature, balanced_forman_curvature(out, 60)[1],
                               rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------
# SDRFSpec: validated settings and the preset merge.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iterations": -1, "tau": 1.0}, "iterations must be >= 0"),
        ({"iterations": 2.5, "tau": 1.0}, "iterations must be an integer"),
        ({"iterations": True, "tau": 1.0}, "iterations must be an integer"),
        ({"iterations": 5, "tau": -0.5}, "tau (softmax temperature) must be finite and >= 0"),
        ({"iterations": 5, "tau": math.inf}, "must be finite"),
        ({"iterations": 5, "tau": "hot"}, "tau must be a number"),
        ({"iterations": 5, "tau": 1.0, "removal_bound": math.nan}, "removal_bound must be"),
        ({"iterations": 5, "tau": 1.0, "removal_bound": "high"}, "removal_bound must be"),
        ({"iterations": 5, "tau": 1.0, "seed": -3}, "seed must be an integer >= 0"),
    ],
)
def test_sdrf_spec_rejects_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SDRFSpec(**kwargs)


def test_sdrf_spec_is_frozen_normalised_and_round_trips():
    spec = SDRFSpec(np.int64(7), 2, removal_bound=0.5, seed=np.int64(3))
    assert spec.to_dict() == {"iterations": 7, "tau": 2.0, "removal_bound": 0.5, "seed": 3}
    assert type(spec.iterations) is int and type(spec.tau) is float
    assert type(spec.seed) is int
    assert SDRFSpec(**spec.to_dict()) == spec
    with pytest.raises(AttributeError):
        spec.tau = 3.0  # type: ignore[misc]
    transform = SDRF.from_spec(spec)
    assert transform.spec == spec
    assert repr(transform) == "SDRF(iterations=7, tau=2.0, removal_bound=0.5, seed=3)"


def test_sdrf_spec_from_preset_equals_the_preset():
    spec = SDRFSpec.from_preset("texas")
    assert spec == SDRFSpec(**sdrf_preset("texas"))
    assert spec.to_dict() == {**sdrf_preset("texas"), "seed": 0}
    # None counts as not given.
    assert SDRFSpec.from_preset("Texas", iterations=None, tau=None, removal_bound=None) == spec


def test_sdrf_spec_from_preset_overrides_only_what_is_given():
    preset = sdrf_preset("texas")
    spec = SDRFSpec.from_preset("texas", iterations=5)
    assert spec.to_dict() == {**preset, "iterations": 5, "seed": 0}
    spec = SDRFSpec.from_preset("texas", tau=0.0, seed=4)
    assert (spec.iterations, spec.tau, spec.removal_bound, spec.seed) == (
        preset["iterations"], 0.0, preset["removal_bound"], 4)
    with pytest.raises(ConfigError, match="tau"):
        SDRFSpec.from_preset("texas", tau=-1.0)
    with pytest.raises(TypeError, match="temperature"):
        SDRFSpec.from_preset("texas", temperature=1.0)


def test_sdrf_spec_from_preset_without_a_preset():
    for kwargs in ({}, {"iterations": 5}, {"tau": 1.0, "removal_bound": 0.5}):
        with pytest.raises(ConfigError, match="no SDRF preset for dataset 'csbm:n=50'"):
            SDRFSpec.from_preset("csbm:n=50", **kwargs)
    with pytest.raises(ConfigError, match="needs iterations and tau"):
        SDRFSpec.from_preset(None)
    with pytest.raises(ConfigError, match="needs tau"):
        SDRFSpec.from_preset(None, iterations=3)
    spec = SDRFSpec.from_preset("csbm:n=50", iterations=5, tau=1.0)
    assert spec.to_dict() == {"iterations": 5, "tau": 1.0, "removal_bound": None, "seed": 0}
    assert SDRFSpec.from_preset(None, iterations=5, tau=1.0, removal_bound=0.2) == SDRFSpec(
        5, 1.0, 0.2)


def test_package_attribute_sdrf_is_the_function():
    import importlib

    import framekd.rewire as rewire

    assert callable(rewire.sdrf) and rewire.sdrf is sdrf
    assert importlib.import_module("framekd.rewire.flow").sdrf is sdrf
