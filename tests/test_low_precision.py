"""Students cast to bfloat16 for inference (``model.to(torch.bfloat16)``), and the timing of
both precisions side by side in ``framekd bench speed --dtypes``."""

from __future__ import annotations

import copy

import pytest
import torch

from framekd.errors import ConfigError
from framekd.models import FMLPC, FMLPO, FMLPS, MLP
from framekd.models.sparse_input import linear

#: bfloat16 keeps 8 significant bits (relative rounding 2^-9 per operation); a few
#: layers of products and sums stay within a few percent of the logits' scale.
REL_TOL = 0.05

KW = {"knowledge_channels": 3, "knowledge_width": 12}


def _students(d: int) -> dict[str, torch.nn.Module]:
    return {
        "mlp": MLP(d, 16, 4),
        "fmlp-s": FMLPS(d, 16, 4, **KW),
        "fmlp-o": FMLPO(d, 16, 4, num_powers=3, **KW),
        "fmlp-c": FMLPC(d, 16, 4, num_powers=3, **KW),
    }


def _features(sparse: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if not sparse:
        return torch.randn(80, 10, generator=gen)
    # 80 rows, 2 % non-zeros: the students multiply these as a CSR matrix.
    x = torch.zeros(80, 200)
    x[torch.arange(80), torch.randint(0, 200, (80,), generator=gen)] = 1.0
    x[torch.arange(80), torch.randint(0, 200, (80,), generator=gen)] = 1.0
    return x


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("name", ["mlp", "fmlp-s", "fmlp-o", "fmlp-c"])
def test_a_student_cast_to_bfloat16_answers_as_in_float32(name, sparse):
    torch.manual_seed(0)
    x = _features(sparse)
    model = _students(x.size(1))[name].eval()
    z = None if name == "mlp" else torch.randn(3, 3, x.size(0), 12)
    if name == "fmlp-s":
        z = z[:, :1]
    low = copy.deepcopy(model).to(torch.bfloat16)
    with torch.no_grad():
        want = model(x, z)
        got = low(x.to(torch.bfloat16), None if z is None else z.to(torch.bfloat16))
    assert got.logits.dtype == torch.bfloat16
    scale = float(want.logits.abs().max())
    assert float((got.logits.float() - want.logits).abs().max()) <= REL_TOL * scale
    if want.gates is not None:
        torch.testing.assert_close(got.gates.float(), want.gates, rtol=0, atol=REL_TOL)


def test_sparse_features_meet_low_precision_weights_in_float32():
    """CPU has no bfloat16 sparse product: the CSR features (float32) multiply the widened
    weights and the result comes back in the weights' dtype."""
    x = _features(sparse=True)
    weight, bias = torch.randn(7, 200).to(torch.bfloat16), torch.randn(7).to(torch.bfloat16)
    got = linear(x.to_sparse_csr(), weight, bias)
    want = torch.nn.functional.linear(x, weight.float(), bias.float())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=2 ** -7, atol=1e-6)


def test_mixed_precisions_are_config_errors():
    model = FMLPO(10, 16, 4, num_powers=2, **KW).eval().to(torch.bfloat16)
    x = torch.randn(5, 10).to(torch.bfloat16)
    with pytest.raises(ConfigError, match=r"weights are bfloat16 but the knowledge is float32"):
        model(x, torch.randn(3, 2, 5, 12))
    mlp = MLP(10, 16, 4).eval().to(torch.bfloat16)
    with pytest.raises(ConfigError, match=r"input features are float32 but the model's weights "
                                          r"are bfloat16.*x\.to\(torch\.bfloat16\)"):
        mlp(torch.randn(5, 10))


def test_bench_speed_times_the_students_in_each_dtype():
    from framekd.bench import speed_benchmark

    spec = "csbm:n=120,c=2,d=4,h=0.5,f=6,seed=0"
    opts = {"models": ["spatial", "mlp", "fmlp-o"], "repeats": 1, "warmup": 0,
            "overrides": ["teacher.hidden=8", "framelet.order=3"]}
    res = speed_benchmark(spec, dtypes=("float32", "bfloat16"), **opts)
    rows = {(r["model"], r["dtype"]): r for r in res["rows"]}
    assert set(rows) == {("spatial", "float32"), ("mlp", "float32"), ("fmlp-o", "float32"),
                         ("mlp", "bfloat16"), ("fmlp-o", "bfloat16")}
    assert res["dtypes"] == ["float32", "bfloat16"]
    assert rows["mlp", "float32"]["mlp_ratio"] == pytest.approx(1.0)
    for row in rows.values():
        assert row["full_ms"] > 0 and row["query_ms"] > 0 and row["mlp_ratio"] > 0
    with pytest.raises(ConfigError, match="dtypes must be among float32, bfloat16, float16"):
        speed_benchmark(spec, dtypes=("int8",), **opts)


def test_bench_speed_times_the_students_in_row_blocks_too(tmp_path, capsys):
    from framekd.bench import speed_benchmark
    from framekd.cli import main

    spec = "csbm:n=120,c=2,d=4,h=0.5,f=6,seed=0"
    opts = {"models": ["spatial", "mlp", "fmlp-o"], "repeats": 1, "warmup": 0,
            "overrides": ["teacher.hidden=8", "framelet.order=3"]}
    res = speed_benchmark(spec, dtypes=("float32", "bfloat16"), blocks=[50], **opts)
    rows = {(r["model"], r["dtype"], r["block"]): r for r in res["rows"]}
    students = {(m, d, b) for m in ("mlp", "fmlp-o") for d in ("float32", "bfloat16")
                for b in (None, 50)}
    assert set(rows) == {("spatial", "float32", None)} | students
    assert res["blocks"] == [50]
    assert rows["mlp", "float32", None]["mlp_ratio"] == pytest.approx(1.0)
    assert all(r["full_ms"] > 0 for r in rows.values())
    with pytest.raises(ConfigError, match="blocks must be positive integers"):
        speed_benchmark(spec, blocks=[0], **opts)
    assert main(["bench", "speed", "--datasets", spec, "--blocks", "5O"]) == 2
    assert "--blocks expects comma-separated positive integers" in capsys.readouterr().err
