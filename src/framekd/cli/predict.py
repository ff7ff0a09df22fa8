"""``framekd predict``: a trained model of a finished run answers for nodes of a graph.

The graph (``--graph``: a dataset name, a ``csbm:...`` spec or a user graph folder, as for
``framekd run --dataset``) may hold nodes the run never saw: feature rows appended after the
training graph's, edges added to them. It is prepared with the run's settings and the
queried nodes' knowledge rows are computed from their receptive field
(:mod:`framekd.predict`). Writes a CSV (``node, predicted_class, prob_<c>...`` and the
student's gate columns) atomically and prints a short summary.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

ROWS = ("auto", "local", "full")  # framekd.predict.ROWS, spelled out to keep --help light


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict nodes of a graph (new nodes included) with a trained student",
        description="Load one model of one seed of a finished `framekd run` and predict "
        "nodes of a graph with the run's feature columns; the graph may hold nodes appended "
        "after training (feature rows and edges). The graph is prepared with the run's "
        "settings (SDRF rewiring included) and the queried nodes' knowledge rows come from "
        "their receptive field. Writes node, predicted_class, prob_<class> and gate columns.",
    )
    parser.add_argument("--run", required=True, type=Path, metavar="DIR",
                        help="folder of a finished `framekd run` (its --out)")
    parser.add_argument("--seed", type=int, default=0, metavar="I",
                        help="seed whose weights are used (default 0)")
    parser.add_argument("--model", default="fmlp-o", metavar="NAME",
                        help="fmlp-o (default), fmlp-s, fmlp-c, glnn (the distilled MLP), "
                        "mlp (trained on labels alone) or one of the run's teachers")
    parser.add_argument("--graph", required=True, metavar="NAME|DIR",
                        help="dataset name, csbm:... spec or graph folder (edges.csv, "
                        "features.npy|csv, labels.csv with -1 for unlabelled nodes)")
    parser.add_argument("--nodes", metavar="LIST|new|FILE",
                        help="nodes to predict: ids and half-open ranges (3,7,100:110), 'new' "
                        "(the nodes beyond the training graph's node count) or a file of ids "
                        "(one per line or comma-separated); default every node")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="CSV file (default RUN/predictions/<model>-seed<I>.csv)")
    parser.add_argument("--rows", choices=ROWS, default="auto",
                        help="knowledge rows of --nodes: from the receptive field while it "
                        "holds under half the graph (auto), always (local) or from the whole "
                        "graph's knowledge (full)")
    parser.add_argument("--rows-tol", type=float, default=0.0, metavar="TOL",
                        help="0 (default): exact knowledge rows; e.g. 1e-3: approximate rows "
                        "of --nodes from their significant field (walks pruned below TOL), "
                        "fast where the exact field is the whole graph")
    parser.add_argument("--device", help="cpu (default) or cuda[:i]")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="precision of a student (default float32); in bfloat16 it "
                        "answers as in float32; whether it is faster depends on the CPU and "
                        "the student (FMLP-O: 2.2-2.8x with AMX or AVX-512 BF16; FMLP-S: "
                        "no reliable gain without AMX; BENCHMARKS.md §11.6)")
    parser.add_argument("--quiet", action="store_true", help="no summary, only notices")
    parser.set_defaults(handler=handle)


_RANGE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_INT = re.compile(r"^\s*\d+\s*$")


def _ids(tokens: list[tuple[str, str]]) -> list[int]:
    """Node ids of ``(token, where)`` pairs: ``i`` or the half-open range ``a:b``."""
    from framekd.errors import ConfigError

    out: list[int] = []
    for token, where in tokens:
        if _INT.match(token):
            out.append(int(token))
        elif m := _RANGE.match(token):
            a, b = int(m.group(1)), int(m.group(2))
            if b <= a:
                raise ConfigError(f"--nodes: range {token.strip()!r}{where} is empty; write "
                                  "a:b with a < b (b excluded)")
            out.extend(range(a, b))
        else:
            raise ConfigError(f"--nodes: {token.strip()!r}{where} is not a node id; give "
                              "non-negative integer ids or ranges a:b (e.g. 3,7,100:110), "
                              "'new', or a file of ids")
    return out


def parse_nodes(text: str) -> list[int] | str:
    """``--nodes``: ``"new"``, or the ids it lists (inline or in a file)."""
    from framekd.errors import ConfigError

    if text.strip().lower() == "new":
        return "new"
    path = Path(text).expanduser()
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--nodes {text}: cannot read the file ({err})") from None
        tokens, first = [], True
        for lineno, line in enumerate(lines, 1):
            content = line.split("#", 1)[0].strip()
            if not content:
                continue
            parts = [p for p in re.split(r"[,\s]+", content) if p]
            if first and not any(_INT.match(p) or _RANGE.match(p) for p in parts):
                first = False
                continue  # a header line such as "node"
            first = False
            tokens += [(p, f" on line {lineno} of {path}") for p in parts]
        if not tokens:
            raise ConfigError(f"--nodes {text}: the file lists no node id; write one id per "
                              "line (or comma-separated)")
        return _ids(tokens)
    if os.sep in text or text.endswith((".csv", ".txt")):
        raise ConfigError(f"--nodes {text}: no such file; give a file of node ids, ids such as "
                          "3,7,100:110, or 'new'")
    return _ids([(t, "") for t in text.split(",") if t.strip()] or [(text, "")])


def handle(args: argparse.Namespace) -> int:
    from framekd.cli import make_log
    from framekd.data import load_dataset
    from framekd.errors import ConfigError
    from framekd.models.registry import model_name
    from framekd.predict import Predictor

    if args.out is not None and args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a folder; give the path of the CSV file to "
                          "write (e.g. preds.csv)")
    log = make_log(args.quiet)
    nodes = None if args.nodes is None else parse_nodes(args.nodes)
    predictor = Predictor.from_run(args.run, model=args.model, seed=args.seed,
                                   device=args.device or "cpu", rows=args.rows,
                                   rows_tol=args.rows_tol, log=log, dtype=args.dtype)
    data = load_dataset(args.graph)
    if isinstance(nodes, str):
        nodes = predictor.new_nodes(data)
    result = predictor.predict(data, nodes)
    out = args.out or args.run / "predictions" / f"{model_name(args.model)}-seed{args.seed}.csv"
    result.write_csv(out)
    if not args.quiet:
        for line in summary(result, data, args):
            print(line, flush=True)
    print(f"wrote {out} ({_describe_columns(result)})", flush=True)
    return 0


def summary(result, data, args: argparse.Namespace) -> list[str]:
    """The lines printed after a prediction: what was predicted, how the knowledge rows were
    obtained, the class counts (and the accuracy on queried nodes that carry labels)."""
    import torch

    b, new = result.nodes.numel(), int(result.is_new.sum())
    lines = [f"predicted {b} node(s) of {args.graph} ({new} new: id >= "
             f"{result.training_nodes}, the training graph's node count) with {result.model} "
             f"(seed {result.seed} of {args.run}) in {result.seconds:.2f} s"]
    k = result.knowledge
    if k is not None:
        field = k.get("receptive_field")
        how = {"local": "from the receptive field",
               "approx": f"approximated (tol {args.rows_tol:g}) from the significant field",
               }.get(k["method"], "from the whole graph's knowledge")
        if field is not None:
            radius = "unbounded" if field["radius"] is None else f"{field['radius']} hops"
            how += (f" (receptive field: {field['num_nodes']} of {field['graph_nodes']} nodes, "
                    f"{100 * field['fraction']:.1f}%, radius {radius})")
        lines.append(f"knowledge rows {how} in {k['seconds']:.3f} s")
    counts = torch.bincount(result.pred, minlength=result.logits.size(1)).tolist()
    text = ", ".join(f"{c}: {n}" for c, n in enumerate(counts))
    y = getattr(data, "y", None)
    if y is not None:
        labels = y.cpu()[result.nodes]
        known = labels >= 0
        if bool(known.any()):
            acc = float((result.pred[known] == labels[known]).float().mean())
            text += (f"; accuracy {100 * acc:.2f}% on the {int(known.sum())} node(s) the graph "
                     "labels (training nodes included)")
    lines.append(f"predicted classes: {text}")
    return lines


def _describe_columns(result) -> str:
    cols = result.columns()
    probs = [c for c in cols if c.startswith("prob_")]
    gates = result.gate_columns()
    text = f"node, predicted_class, {probs[0]}..{probs[-1]}"
    if gates:
        text += f", {gates[0]}..{gates[-1]}"
    return text
