"""framekd on several processes (framekd.distributed): sharded knowledge, DDP distillation,
the process group's failure behaviour and ``framekd run`` under torchrun.

The multi-process tests start 2 gloo processes, with ``torch.multiprocessing.spawn`` (unit
tests: one spawn runs every case and the tests read its results) or with
``python -m torch.distributed.run`` (the end-to-end run); they are skipped only when this
PyTorch has no gloo backend. Tolerances: knowledge 1e-6 (absolute; the same sums in another
column grouping), DDP weights 1e-5 (the same gradients summed over ranks in another order).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from framekd.distributed import (
    DistributedError,
    Shard,
    block_range,
    distill_ddp,
    gather_rows,
    init_from_env,
    load_shard,
    peer_errors,
    save_shard,
    scatter_rows,
    sharded_knowledge,
    sketch_columns,
)
from framekd.framelets import FrameletOperator
from framekd.knowledge import KnowledgeSpec, graph_knowledge, sketch_matrix
from helpers import bag_of_words, random_graph

gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                          reason="this PyTorch build has no torch.distributed gloo backend")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- one process


def test_block_range_covers_everything_once():
    for total, parts in [(10, 3), (7, 7), (3, 5), (0, 2), (1001, 8)]:
        blocks = [block_range(total, parts, i) for i in range(parts)]
        assert blocks[0][0] == 0 and blocks[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
        sizes = [b - a for a, b in blocks]
        assert max(sizes) - min(sizes) <= 1


def test_shard_local_rows():
    shard = Shard(1, 3, 10)  # rows [3, 6)
    assert (shard.lo, shard.hi, shard.sizes()) == (3, 6, [3, 3, 4])
    assert shard.local(torch.tensor([0, 3, 5, 6, 9, 4])).tolist() == [0, 2, 1]


@pytest.mark.parametrize(("n", "m", "cols"), [(1003, 40, (3, 17)), (1001, 3, (1, 2)),
                                              (5, 3, (0, 3)), (70_000, 256, (128, 256))])
def test_sketch_columns_are_the_sketch_matrix_columns(n, m, cols):
    """The sketch block of a rank is drawn exactly as the one-process sketch (tolerance 0:
    the same generator draws the same numbers)."""
    full = sketch_matrix(n, m, seed=7)[:, cols[0]:cols[1]]
    torch.testing.assert_close(sketch_columns(n, m, *cols, seed=7), full, atol=0, rtol=0)


def test_one_process_sharded_knowledge_is_graph_knowledge():
    ei, n = random_graph(3)
    x = bag_of_words(n, 5, 0.4)
    op = FrameletOperator(ei, n, epsilon=0.1)
    spec = KnowledgeSpec(mode="features", powers=2)
    torch.testing.assert_close(sharded_knowledge(ei, n, x, spec, operator=op, block_size=2),
                               graph_knowledge(ei, n, x, spec, operator=op), atol=1e-6, rtol=0)


def test_shard_file_round_trip_and_damage(tmp_path):
    shard = Shard(0, 2, 9)
    rows = torch.randn(2, 2, shard.size, 4)
    path = tmp_path / "k.rows.pt"
    save_shard(path, rows, "key", shard)
    torch.testing.assert_close(load_shard(path, "key", shard), rows, atol=0, rtol=0)
    with pytest.warns(UserWarning, match="unusable"):
        assert load_shard(path, "other key", shard) is None
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.warns(UserWarning, match="unusable"):
        assert load_shard(path, "key", shard) is None
    assert load_shard(tmp_path / "missing.pt", "key", shard) is None


def test_unreachable_rendezvous_is_a_clear_error_within_the_timeout(monkeypatch):
    """A rank whose MASTER_ADDR:MASTER_PORT has no rank 0 gives up after the stated timeout
    (2 s; the TCP store retries, so the bound is 3 timeouts plus start-up)."""
    port = free_port()
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    start = time.perf_counter()
    with pytest.raises(DistributedError, match=rf"rank 1 of 2 .*127\.0\.0\.1:{port}.* 2 s"):
        init_from_env("cpu", timeout=2)
    assert time.perf_counter() - start < 3 * 2 + 5
    assert not dist.is_initialized()


def test_cli_rank_without_peers_exits_2_with_one_line(tmp_path):
    """``framekd run`` as rank 0 of 2 whose peer never comes: exit 2 within the timeout."""
    env = dict(os.environ, RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(free_port()), FRAMEKD_DIST_TIMEOUT="2", OMP_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "framekd", "run", "--dataset",
                           "csbm:n=60,seed=0", "--seeds", "1", "--out", str(tmp_path / "o"),
                           "--quiet"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("framekd run: error:")]
    assert len(line) == 1 and "rank 0 of 2 could not join" in line[0], proc.stderr[-2000:]
    assert "FRAMEKD_DIST_TIMEOUT" in line[0]
    assert time.perf_counter() - start < 40


# ----------------------------------------------------------------------------- 2 processes
# One mp.spawn runs every case below on 2 gloo ranks and saves each rank's results; the
# tests compare them with the one-process functions.

#: DDP cases: (student, lam, batch_size, epochs, sparse features).
DDP_CASES = {
    "mlp-full": ("mlp", 0.0, None, 12, False),
    "fmlp-s-batches": ("fmlp-s", 0.5, 16, 4, False),
    "fmlp-o-full": ("fmlp-o", 0.0, None, 8, False),
    "mlp-one-node-batches": ("mlp", 0.3, 1, 2, True),  # every step one rank has no row
}


def _graph():
    from framekd.data import csbm

    data = csbm(num_nodes=121, num_classes=3, avg_degree=4.0, homophily=0.8,
                num_features=6, seed=3)
    return data


def _knowledge_cases():
    ei, n = random_graph(5, isolated=4)  # 41 nodes: shards of 20 and 21 rows
    return ei, n, {
        "features": (KnowledgeSpec(mode="features", powers=2), bag_of_words(n, 5, 0.4), 2),
        "features-one-column": (KnowledgeSpec(mode="features", powers=3),
                                bag_of_words(n, 1, 0.5), None),
        "sketch": (KnowledgeSpec(mode="sketch", powers=2, sketch_dim=6, seed=4), None, 4),
        "rows": (KnowledgeSpec(mode="rows", powers=1), None, None),
    }


def _ddp_setup(case: str):
    """Graph, split, full knowledge, teacher log-probs and a fresh student of ``case``."""
    from framekd.models import build_student
    from framekd.splits import make_split

    name, lam, batch, epochs, sparse = DDP_CASES[case]
    data = _graph()
    if sparse:
        data.x = bag_of_words(data.num_nodes, 40, 0.05, seed=1)
    op = FrameletOperator(data.edge_index, data.num_nodes)
    k = graph_knowledge(data.edge_index, data.num_nodes, data.x,
                        KnowledgeSpec(mode="features", powers=2), operator=op)
    split = make_split(data, "fgkd", 0)
    logp = torch.log_softmax(torch.randn(data.num_nodes, 3,
                                         generator=torch.Generator().manual_seed(1)), -1)
    torch.manual_seed(11)
    student = build_student(name, data.x.size(1), 3, hidden_channels=8, dropout=0.0,
                            knowledge_shape=k.shape)
    options = dict(lam=lam, lr=0.02, weight_decay=5e-4, epochs=epochs, patience=epochs,
                   batch_size=batch, seed=5)
    return data, split, (None if name == "mlp" else k), logp, student, options


def _spawned(rank: int, world: int, port: int, out: str) -> None:
    from framekd.distributed import shutdown

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ctx = init_from_env("cpu", timeout=60)
    try:
        res: dict = {"knowledge": {}, "ddp": {}}
        ei, n, cases = _knowledge_cases()
        op = FrameletOperator(ei, n, epsilon=0.1)
        for key, (spec, x, block) in cases.items():
            res["knowledge"][key] = sharded_knowledge(ei, n, x, spec, operator=op,
                                                      block_size=block)
        shard = Shard(rank, world, 11)
        full = torch.arange(11 * 3, dtype=torch.float32).view(11, 3)
        res["scatter"] = scatter_rows(full if rank == 0 else None, shard, (3,), full.dtype,
                                      full.device)
        res["gather"] = gather_rows(full[shard.lo:shard.hi].t().contiguous(), shard, dim=1)
        for case in DDP_CASES:
            data, split, k, logp, student, options = _ddp_setup(case)
            sh = Shard(rank, world, data.num_nodes)
            rows = slice(sh.lo, sh.hi)
            r = distill_ddp(student, data.x[rows], data.y[rows],
                            None if k is None else k[:, :, rows], logp[rows], split, sh,
                            **options)
            res["ddp"][case] = {"state": student.state_dict(), "history": r.history,
                                "acc": (r.train_acc, r.val_acc, r.test_acc),
                                "best_epoch": r.best_epoch}
        if rank == 0:  # last case: rank 0 dies; rank 1's next collective must fail at once
            torch.save(res, Path(out) / f"rank{rank}.pt")
            os._exit(0)
        start = time.perf_counter()
        try:
            with peer_errors(ctx):
                dist.all_reduce(torch.zeros(1))
        except DistributedError as err:
            res["peer_died"] = (str(err), time.perf_counter() - start)
        torch.save(res, Path(out) / f"rank{rank}.pt")
    finally:
        shutdown()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Each rank's results of :func:`_spawned` on 2 gloo processes."""
    import torch.multiprocessing as mp

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("this PyTorch build has no torch.distributed gloo backend")
    out = tmp_path_factory.mktemp("two-ranks")
    mp.spawn(_spawned, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


@gloo
@pytest.mark.parametrize("case", ["features", "features-one-column", "sketch", "rows"])
def test_sharded_knowledge_equals_one_process(two_ranks, case):
    """Column blocks propagated per rank, rows exchanged with all_to_all: rank 0 and rank 1
    hold rows [0, N/2) and [N/2, N) of the one-process knowledge (several rounds per rank,
    and a rank without columns in 'features-one-column')."""
    ei, n, cases = _knowledge_cases()
    spec, x, _ = cases[case]
    op = FrameletOperator(ei, n, epsilon=0.1)
    expected = graph_knowledge(ei, n, x, spec, operator=op)
    got = [two_ranks[r]["knowledge"][case] for r in range(2)]
    assert [g.size(2) for g in got] == Shard(0, 2, n).sizes()
    torch.testing.assert_close(torch.cat(got, dim=2), expected, atol=1e-6, rtol=0)


@gloo
def test_scatter_and_gather_rows(two_ranks):
    full = torch.arange(11 * 3, dtype=torch.float32).view(11, 3)
    torch.testing.assert_close(torch.cat([two_ranks[r]["scatter"] for r in range(2)]), full)
    torch.testing.assert_close(two_ranks[0]["gather"], full.t())
    assert two_ranks[1]["gather"] is None


@gloo
@pytest.mark.parametrize("case", list(DDP_CASES))
def test_ddp_distillation_follows_one_process(two_ranks, case):
    """Without dropout, DDP on 2 ranks takes the one-process steps: the same per-epoch loss
    and validation accuracy (1e-6) and the same final weights (atol 1e-5), on both ranks."""
    from framekd.distill import distill_student

    data, split, k, logp, student, options = _ddp_setup(case)
    ref = distill_student(student, data, k, logp, split, **options)
    for rank in range(2):
        got = two_ranks[rank]["ddp"][case]
        assert len(got["history"]) == len(ref.history)
        for (loss, val), (ref_loss, ref_val) in zip(got["history"], ref.history, strict=True):
            # accuracies: one process takes a float32 mean, DDP a ratio of counts
            assert abs(loss - ref_loss) < 1e-5 and abs(val - ref_val) < 1e-6
        for key, value in student.state_dict().items():
            torch.testing.assert_close(got["state"][key], value, atol=1e-5, rtol=0)
        assert got["best_epoch"] == ref.best_epoch
        assert got["acc"] == pytest.approx((ref.train_acc, ref.val_acc, ref.test_acc),
                                           abs=1e-6)


# ----------------------------------------------------------------------------- framekd run

DATASET = "csbm:n=600,c=3,h=0.8,seed=2"
#: Few epochs; no dropout in the students, so that 2 processes take the one-process steps.
SETTINGS = ["teacher.epochs=15", "teacher.patience=15", "student.epochs=20",
            "student.patience=20", "student.dropout=0.0"]


def _run_args(out: Path, quiet: bool = True) -> list[str]:
    args = ["run", "--dataset", DATASET, "--seeds", "1", "--out", str(out)]
    args += ["--quiet"] if quiet else []
    for item in SETTINGS:
        args += ["--set", item]
    return args


@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory):
    """``python -m torch.distributed.run --nproc-per-node 2 -m framekd run ...`` and the same
    run in one process, with one knowledge cache."""
    from framekd.config import resolve
    from framekd.experiment import run_experiment

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("this PyTorch build has no torch.distributed gloo backend")
    tmp = tmp_path_factory.mktemp("torchrun")
    cache = tmp / "cache"
    env = dict(os.environ, OMP_NUM_THREADS="1", FRAMEKD_CACHE=str(cache))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", "-m", "framekd",
                           *_run_args(tmp / "two", quiet=False)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = resolve(DATASET, flags={"seeds": 1}, overrides=SETTINGS)
    one = run_experiment(cfg, tmp / "one", progress=False, cache_dir=cache / "artifacts",
                         log=lambda _: None)
    return {"tmp": tmp, "env": env, "seconds": seconds, "proc": proc, "one": one,
            "two": json.loads((tmp / "two" / "metrics.json").read_text())}


@gloo
def test_torchrun_knowledge_equals_one_process(torchrun_run):
    """The two ranks' knowledge shards (written to the cache) are the one-process knowledge."""
    from framekd.io import load_tensors

    artifacts = torchrun_run["tmp"] / "cache" / "artifacts"
    (whole,) = artifacts.glob("knowledge-*.safetensors")
    shards = sorted(artifacts.glob("knowledge-*.rows-*.pt"),
                    key=lambda p: int(p.name.split(".rows-")[1].split("-")[0]))
    assert len(shards) == 2
    rows = [torch.load(p, weights_only=True)["knowledge"] for p in shards]
    torch.testing.assert_close(torch.cat(rows, dim=2), load_tensors(whole)["knowledge"],
                               atol=1e-6, rtol=0)


@gloo
def test_torchrun_metrics_schema_accuracy_and_time(torchrun_run):
    """Same metrics.json schema plus world_size 2 (1 for one process), every accuracy within
    1 point of one process, written by rank 0 only, under 2 minutes; logs carry the rank."""
    one, two = torchrun_run["one"], torchrun_run["two"]
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert set(one) == set(two)
    assert list(one["models"]) == list(two["models"])
    for name, row in one["models"].items():
        assert set(row) == set(two["models"][name])
        assert abs(row["accuracy_mean"] - two["models"][name]["accuracy_mean"]) <= 0.01, name
    assert two["knowledge_shape"] == one["knowledge_shape"]
    seed_one = json.loads((torchrun_run["tmp"] / "one/seed_0/metrics.json").read_text())
    seed_two = json.loads((torchrun_run["tmp"] / "two/seed_0/metrics.json").read_text())
    assert set(seed_one) == set(seed_two) and set(seed_one["artifacts"]) == set(
        seed_two["artifacts"])
    out = torchrun_run["proc"].stdout
    assert out.count("results written to") == 1  # rank 0 prints the table
    assert "[rank 0] knowledge rows [0, 300) of 600" in out
    assert "[rank 1] knowledge rows [300, 600) of 600" in out
    assert torchrun_run["seconds"] < 120


@gloo
def test_nproc_relaunch_resumes_finished_seeds(torchrun_run):
    """``framekd run --nproc 2`` on the finished folder: torchrun restarts it, rank 0 finds
    the seed finished (files match their record) and nothing is trained again."""
    tmp, env = torchrun_run["tmp"], torchrun_run["env"]
    seed_file = tmp / "two" / "seed_0" / "metrics.json"
    before = seed_file.stat().st_mtime_ns
    proc = subprocess.run([sys.executable, "-m", "framekd", *_run_args(tmp / "two"),
                           "--nproc", "2"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert seed_file.stat().st_mtime_ns == before
    again = json.loads((tmp / "two" / "metrics.json").read_text())
    assert again["world_size"] == 2 and again["models"] == torchrun_run["two"]["models"]


@gloo
def test_a_rank_that_dies_is_a_clear_error_at_once(two_ranks):
    """Rank 0 exits; rank 1's next collective ends in a DistributedError naming the rank,
    long before the 60 s timeout."""
    message, seconds = two_ranks[1]["peer_died"]
    assert message.startswith("rank 1 of 2: a collective failed")
    assert "another rank stopped" in message and seconds < 30
