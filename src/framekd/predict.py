r"""Predictions of a trained model on a graph, new nodes included (``framekd predict``).

:meth:`Predictor.from_run` loads one model of one seed of a finished ``framekd run``
(:func:`framekd.experiment.load_trained`: ``config.yaml`` and the seed's safetensors, nothing
unpickled); :meth:`Predictor.predict` answers for nodes of a graph that may hold nodes the
run never saw (feature rows appended, edges added):

.. code-block:: python

    from framekd import Predictor
    from framekd.data import load_dataset

    p = Predictor.from_run("runs/demo", model="fmlp-o", seed=0)
    out = p.predict(load_dataset("graph_new/"), nodes=[200, 201])
    out.pred, out.probs, out.gates       # [B], [B, classes], [K, B, C] for FMLP-O

**The graph is prepared as ``framekd run`` prepared the training graph** (the settings come
from the run's ``config.yaml``): canonicalised (symmetric, no self-loops or duplicate edges,
:func:`framekd.graph.canonicalize`); rewired with SDRF when the run rewired
(:func:`framekd.trained.run_graph`, see below); then the students' knowledge
:math:`K_c^k M` is computed with the run's framelet settings, ε, number of powers (teacher
layers), knowledge mode, sketch width and seed. ``knowledge.mode: auto`` is *not* resolved
again on the new graph (a larger graph could switch it from ``features`` to ``sketch``): the
mode is the one the weights were trained with (the run's ``metrics.json``, else resolved on
the training graph's size recorded with the weights). ``framekd run`` normalises no
features, so neither does this. The one setting that depends on the whole graph is
:math:`\lambda_{\max}` (``framelet.lambda_max: estimate``, the default): it is estimated on
the given graph, as a full recomputation of the knowledge on that graph would.

**SDRF.** A run trained with ``rewire.method: sdrf`` rewired its graph before everything else;
the given graph is rewired again with the run's SDRF settings (same iterations, τ, removal
bound and seed: :func:`framekd.experiment.prepare_graph`, cached on disk by graph hash and
settings), which is what ``framekd run`` would do with that graph: on the training graph it
gives the training graph's edges exactly. SDRF is a global algorithm, so for such a run the
cost of a prediction follows the whole graph (once per graph, then cached), not the queried
nodes' neighbourhood.

**Which knowledge rows.** With ``nodes=None`` every node is predicted from the whole graph's
knowledge (:func:`framekd.experiment.compute_knowledge`, cached on disk by graph hash like
``framekd run``'s). With ``nodes`` given, only their rows are computed, by
:func:`framekd.inductive.knowledge_at_test_time`: from their receptive field
(:func:`framekd.receptive.knowledge_rows`, the k-hop subgraph the polynomial reaches, with the
full graph's degrees and λ_max, equal to the full computation up to float rounding) while it
holds less than half of the graph's nodes, else from the whole graph's knowledge (cheaper when
the field is most of the graph anyway); ``rows="local"`` or ``"full"`` forces one way.
``rows_tol > 0`` trades exactness for speed: approximate rows from the nodes' *significant*
field (walks pruned below the tolerance, :func:`framekd.receptive.significant_nodes`), whose
cost follows the neighbourhood even where the exact field is the whole graph
(BENCHMARKS.md §11.5 measures the error and the accuracy). The
MLP students (``mlp``, ``glnn``) read no knowledge: their cost is their nodes' features.

**Teachers** (``spectral``, ``spatial``, ``gcn``, ...) predict with one full-graph forward pass
on the prepared graph; the queried nodes' rows are returned.

``knowledge.mode: rows`` knowledge has one column per node of the training graph: a model
trained on it only predicts on a graph with the same node count (else :class:`GraphError`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from framekd.errors import CheckpointError, ConfigError, GraphError

#: How :meth:`Predictor.predict` gets the rows of queried nodes (see the module docstring).
ROWS = ("auto", "local", "full")

NodesLike = Sequence[int] | Tensor | np.ndarray | None


@dataclass
class Prediction:
    """What :meth:`Predictor.predict` returns, one row per queried node.

    Attributes:
        nodes: node ids ``[B]`` (int64) in the given graph, in the order asked.
        logits: class scores ``[B, classes]`` (a teacher's are log-probabilities).
        gates: the student's gates, ``[B, C]`` (FMLP-S) or ``[K, B, C]`` (FMLP-O: one slice
            per layer, the last is the output layer); ``None`` for models without gates.
        model, seed: the model's registry name and the run's seed it comes from.
        training_nodes: the training graph's node count; ids at or above it are new nodes.
        knowledge: how the knowledge rows were obtained (``method``: ``local``, ``full`` or
            ``approx``, ``seconds``, ``receptive_field``); ``None`` for a model without knowledge.
        seconds: the whole call (graph preparation, knowledge, forward pass).
        label_map: the training graph's original label of each class when its labels
            file was renumbered (``metrics.json``'s ``label_map``), else ``None``.
    """

    nodes: Tensor
    logits: Tensor
    gates: Tensor | None
    model: str
    seed: int | None
    training_nodes: int
    knowledge: dict[str, Any] | None = None
    seconds: float = 0.0
    label_map: list[int] | None = None

    @property
    def probs(self) -> Tensor:
        """Class probabilities ``softmax(logits)``, ``[B, classes]``."""
        return torch.softmax(self.logits.float(), dim=-1)

    @property
    def pred(self) -> Tensor:
        """The predicted class of every node, ``[B]`` (int64)."""
        return self.logits.argmax(dim=-1)

    @property
    def is_new(self) -> Tensor:
        """``[B]`` bool: the node did not exist in the training graph (id >= its node count)."""
        return self.nodes >= self.training_nodes

    def gate_columns(self) -> list[str]:
        """CSV column names of the gates: ``gate_c<c>`` (FMLP-S), ``gate_k<k>_c<c>`` (FMLP-O,
        ``k`` the layer), none without gates."""
        if self.gates is None:
            return []
        if self.gates.dim() == 2:
            return [f"gate_c{c}" for c in range(self.gates.size(1))]
        k, _, c = self.gates.shape
        return [f"gate_k{i}_c{j}" for i in range(k) for j in range(c)]

    @property
    def label(self) -> Tensor | None:
        """The predicted class as the training file's label (``label_map``), or ``None``."""
        if self.label_map is None:
            return None
        return torch.tensor(self.label_map, dtype=torch.long)[self.pred.cpu()]

    def columns(self) -> list[str]:
        """``node, predicted_class``, ``predicted_label`` (with a label map),
        ``prob_0 .. prob_<classes-1>`` and the gate columns."""
        probs = [f"prob_{c}" for c in range(self.logits.size(1))]
        label = ["predicted_label"] if self.label_map is not None else []
        return ["node", "predicted_class", *label, *probs, *self.gate_columns()]

    def _gate_table(self) -> Tensor | None:
        if self.gates is None:
            return None
        if self.gates.dim() == 2:
            return self.gates
        return self.gates.permute(1, 0, 2).reshape(self.gates.size(1), -1)  # [B, K*C], k major

    def write_csv(self, path: str | Path) -> Path:
        """Write the table (:meth:`columns`, one line per node) atomically to ``path``.

        Probabilities and gates keep 9 significant digits (a float32 reads back exactly).
        """
        from framekd.io import atomic_open

        path = Path(path)
        values = [self.probs.detach().cpu()]
        gates = self._gate_table()
        if gates is not None:
            values.append(gates.detach().cpu().float())
        table = torch.cat(values, dim=1).double().numpy()
        nodes, pred = self.nodes.tolist(), self.pred.tolist()
        label = None if self.label is None else self.label.tolist()
        with atomic_open(path) as fh:
            fh.write(",".join(self.columns()) + "\n")
            for i, row in enumerate(table):
                head = f"{nodes[i]},{pred[i]}," + ("" if label is None else f"{label[i]},")
                fh.write(head + ",".join(f"{v:.9g}" for v in row) + "\n")
        return path


class Predictor:
    """One trained model of a finished run, ready to predict on any graph with the run's
    feature width (see the module docstring for what is applied to the graph).

    Build it with :meth:`from_run`. The constructor takes the pieces directly.

    Args:
        model: the trained model (a student or a teacher of :mod:`framekd.models`).
        config: the run's :class:`~framekd.config.RunConfig`.
        name: the model's registry name (``fmlp-o``, ``glnn``, ``spectral`` ...).
        num_features, num_classes: the widths the model was trained with.
        knowledge_shape: the ``[C, K, N, width]`` shape of the training knowledge.
        seed: the run's seed the weights come from (reported only).
        knowledge_mode: the mode the weights were trained with (default: ``config``'s,
            ``auto`` resolved on the training graph's size).
        device: where the graph, knowledge and model go (default ``cpu``).
        cache_dir: knowledge and SDRF cache (default ``<FRAMEKD_CACHE>/artifacts``, the one
            ``framekd run`` uses).
        rows: ``auto``, ``local`` or ``full`` (:data:`ROWS`): how queried nodes' knowledge
            rows are computed.
        rows_tol: 0 (default) for exact rows; in (0, 1): approximate rows of queried nodes
            from their significant field (:func:`framekd.receptive.knowledge_rows`'s ``tol``).
        log: where progress lines go (e.g. "rewiring with SDRF"); default silent.
        label_map: the original label of each class when the training labels were
            renumbered (``metrics.json``'s ``label_map``); predictions then carry it.
        dtype: the precision a student runs in, ``float32`` (default) or ``bfloat16`` (the
            model, features and knowledge rows cast; sparse features still multiply in
            float32; whether it is faster depends on the CPU and the student: FMLP-O
            2.2-2.8x with AMX or AVX-512 BF16, FMLP-S no reliable gain without AMX,
            BENCHMARKS.md §11.6). Teachers
            run in float32 only. Logits, probabilities and gates come back in float32.
    """

    def __init__(
        self, model: nn.Module, config: Any, *, name: str, num_features: int,
        num_classes: int, knowledge_shape: Sequence[int], seed: int | None = None,
        knowledge_mode: str | None = None, device: str | torch.device = "cpu",
        cache_dir: str | Path | None = None, rows: str = "auto", rows_tol: float = 0.0,
        log: Callable[[str], None] | None = None, label_map: Sequence[int] | None = None,
        dtype: str | torch.dtype = "float32",
    ) -> None:
        from framekd.experiment import knowledge_spec
        from framekd.models.registry import TEACHERS
        from framekd.receptive import check_tol
        from framekd.trained import default_cache_dir

        if rows not in ROWS:
            raise ConfigError(f"rows must be one of {', '.join(ROWS)}, got {rows!r}")
        self.rows_tol = check_tol(rows_tol)
        if self.rows_tol > 0 and rows == "full":
            raise ConfigError("rows='full' takes the exact rows from the whole graph's "
                              "knowledge; approximate rows (rows_tol > 0) need rows 'auto' or "
                              "'local'")
        self.name, self.seed = name, seed
        self.num_features, self.num_classes = int(num_features), int(num_classes)
        self.knowledge_shape = tuple(int(v) for v in knowledge_shape)
        self.device = torch.device(device)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.rows = rows
        self.log = log or (lambda msg: None)
        self.is_teacher = name in TEACHERS
        self.label_map = None if label_map is None else [int(v) for v in label_map]
        self.dtype = _dtype(dtype, name, self.is_teacher)
        self.model = model.to(self.device, self.dtype).eval()
        c, k, n, width = self.knowledge_shape
        if knowledge_mode is None:
            # The mode `framekd run` resolved: on the training graph (N nodes, d features).
            stub = Data(x=torch.empty((0, self.num_features)), num_nodes=n)
            knowledge_mode = knowledge_spec(config, stub).mode
        # Fixed once: every helper of framekd.experiment then uses the trained mode.
        self.config = replace(config, knowledge_mode=knowledge_mode)
        self.knowledge_mode = knowledge_mode
        if self.uses_knowledge:
            spec = knowledge_spec(self.config, Data(num_nodes=n))
            expected = spec.width(n, torch.empty((0, self.num_features)))
            if spec.powers != k or expected != width:
                raise CheckpointError(
                    f"model {name!r} was trained on knowledge of shape {list(knowledge_shape)} "
                    f"but the run's settings give {spec.powers} powers of width {expected} "
                    f"({knowledge_mode} knowledge); the weights do not belong to this "
                    "config.yaml")

    @classmethod
    def from_run(
        cls, run_dir: str | Path, model: str = "fmlp-o", seed: int = 0, *,
        device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
        rows: str = "auto", rows_tol: float = 0.0, log: Callable[[str], None] | None = None,
        dtype: str | torch.dtype = "float32",
    ) -> Predictor:
        """Load model ``model`` of seed ``seed`` of the finished run ``run_dir``.

        Args:
            run_dir: the ``--out`` folder of ``framekd run`` (``config.yaml``,
                ``seed_<i>/``).
            model: a student (``fmlp-o``, ``fmlp-s``, ``glnn`` = the distilled MLP, ``mlp`` =
                the MLP trained on labels alone) or the run's teacher or a comparison
                teacher; aliases such as ``fmlpo`` are accepted.
            seed: a finished seed of the run.
            device, cache_dir, rows, rows_tol, log, dtype: see :class:`Predictor`.

        Raises:
            CheckpointError: the folder is not a finished run, the seed is not finished, the
                model has no weights in it, or a file is damaged.
            ConfigError: an unknown model name or a seed that is not an integer.
        """
        from framekd.experiment import load_trained
        from framekd.io import read_json
        from framekd.models.registry import ROW_ORDER, STUDENTS, TEACHERS, model_name
        from framekd.trained import check_trained, read_config, trained_models, trained_shapes

        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
        run_dir = Path(run_dir)
        name = model_name(model)
        known = (*ROW_ORDER, *(m for m in (*STUDENTS, *TEACHERS) if m not in ROW_ORDER))
        if name not in known:
            seed_dir = run_dir / f"seed_{seed}"
            have = trained_models(seed_dir, known) if seed_dir.is_dir() else []
            raise ConfigError(f"unknown model {model!r}; this run's seed {seed} has "
                              f"{', '.join(have) or 'no trained model'}")
        _, weights = check_trained(run_dir, int(seed), name, choices=known,
                                   kind="trained models")
        _, rc = read_config(run_dir)
        d, c, shape = trained_shapes(weights)
        net = load_trained(run_dir, int(seed), name)
        mode, label_map = None, None
        try:
            metrics = read_json(run_dir / "metrics.json")
            mode, label_map = metrics.get("knowledge_mode"), metrics.get("label_map")
        except CheckpointError:
            pass  # no run-level metrics.json (still running): resolve the mode from the shape
        return cls(net, rc, name=name, num_features=d, num_classes=c, knowledge_shape=shape,
                   seed=int(seed), knowledge_mode=mode, device=device, cache_dir=cache_dir,
                   rows=rows, rows_tol=rows_tol, log=log, label_map=label_map, dtype=dtype)

    @property
    def uses_knowledge(self) -> bool:
        """Whether the model reads knowledge rows (the framelet students)."""
        from framekd.models.registry import reads_knowledge

        return not self.is_teacher and reads_knowledge(self.name)

    @property
    def training_nodes(self) -> int:
        """The training graph's node count (node ids at or above it are new nodes)."""
        return self.knowledge_shape[2]

    def new_nodes(self, data: Data) -> Tensor:
        """Ids of the nodes of ``data`` beyond the training graph's node count (rows appended
        after training).

        Raises:
            ConfigError: ``data`` has no such node.
        """
        n = int(data.num_nodes)
        if n <= self.training_nodes:
            raise ConfigError(f"the graph has {n} nodes, no more than the {self.training_nodes} "
                              "of the training graph: there are no new nodes (appended rows) "
                              "to predict; give node ids instead")
        return torch.arange(self.training_nodes, n)

    def prepare(self, data: Data) -> Data:
        """``data`` as ``framekd run`` would prepare it (canonical, rewired when the run
        rewired), on :attr:`device`, after checking it against the model.

        Raises:
            GraphError: no features, a feature width other than the run's, or a node count
                that ``rows`` knowledge cannot describe.
        """
        from framekd.trained import run_graph

        if not isinstance(data, Data):
            raise GraphError(f"expected a torch_geometric Data graph, got {type(data).__name__}")
        if data.x is None or data.x.dim() != 2:
            raise GraphError("the graph has no node features x [N, d]; the model needs the "
                             f"{self.num_features} features it was trained on")
        if data.x.size(1) != self.num_features:
            raise GraphError(
                f"the graph's features have width {data.x.size(1)} but {self.name!r} was "
                f"trained on {self.num_features} features; give the graph with the training "
                "graph's feature columns (same order) for every node")
        n = int(data.num_nodes)
        if self.uses_knowledge and self.knowledge_mode == "rows" and n != self.training_nodes:
            raise GraphError(
                f"{self.name!r} reads 'rows' knowledge, one column per node of the "
                f"{self.training_nodes}-node training graph, so it cannot predict on a graph of "
                f"{n} nodes; train with knowledge.mode=features or sketch to predict on new "
                "nodes")
        graph = run_graph(self.config, data, cache_dir=self.cache_dir, log=self.log)
        if graph.x.dtype != torch.float32:
            graph.x = graph.x.float()
        return graph.to(self.device)

    def node_index(self, nodes: NodesLike, num_nodes: int) -> Tensor:
        """``nodes`` as int64 ids (a boolean mask of ``num_nodes`` entries is accepted).

        Raises:
            ConfigError: no node, non-integer ids, or an id outside ``0..num_nodes-1``.
        """
        index = torch.as_tensor(np.asarray(nodes) if not isinstance(nodes, Tensor) else nodes)
        if index.numel() == 0:
            raise ConfigError("no node to predict: give at least one node id")
        if index.dtype == torch.bool:
            if index.numel() != num_nodes:
                raise ConfigError(f"a node mask needs {num_nodes} entries (one per node), got "
                                  f"{index.numel()}")
            index = index.nonzero().view(-1)
        elif index.dtype.is_floating_point or index.dtype.is_complex:
            raise ConfigError(f"node ids must be integers, got {index.dtype}")
        index = index.long().view(-1).cpu()
        bad = index[(index < 0) | (index >= num_nodes)]
        if bad.numel():
            raise ConfigError(f"node id {int(bad[0])} is out of range: the graph has "
                              f"{num_nodes} nodes (ids 0..{num_nodes - 1})")
        return index

    def knowledge(self, graph: Data, nodes: Tensor | None = None
                  ) -> tuple[Tensor, dict[str, Any]]:
        """The knowledge rows ``[C, K, B, width]`` of ``nodes`` (all when ``None``) of a
        :meth:`prepare`\\ d graph and how they were obtained (``method``, ``seconds``,
        ``receptive_field``)."""
        from framekd.experiment import compute_knowledge, graph_operator, knowledge_spec
        from framekd.inductive import LOCAL_ROWS_MAX_FRACTION, knowledge_at_test_time

        operator = graph_operator(self.config, graph)

        def full() -> Tensor:
            return compute_knowledge(graph, self.config, cache_dir=self.cache_dir,
                                     device=self.device, operator=operator)[0]

        if nodes is None:
            start = time.perf_counter()
            rows = full()
            info = {"method": "full", "seconds": time.perf_counter() - start,
                    "receptive_field": None}
        else:
            limit = {"auto": LOCAL_ROWS_MAX_FRACTION, "local": math.inf, "full": 0.0}[self.rows]
            rows, info = knowledge_at_test_time(graph, nodes, knowledge_spec(self.config, graph),
                                                operator, full_knowledge=full,
                                                max_fraction=limit, tol=self.rows_tol)
        c, k, _, width = self.knowledge_shape
        if (rows.size(0), rows.size(1), rows.size(3)) != (c, k, width):
            raise CheckpointError(
                f"the graph's knowledge has shape {list(rows.shape)} but {self.name!r} was "
                f"trained on [{c}, {k}, B, {width}]; the run's settings do not reproduce it")
        return rows, info

    def predict(self, data: Data, nodes: NodesLike = None) -> Prediction:
        """Predict nodes ``nodes`` (ids or a boolean mask; all nodes when ``None``) of ``data``.

        Args:
            data: a graph with the run's feature width; it may hold nodes the run never saw
                (appended rows) and edges to them. Labels are not needed.
            nodes: the nodes to answer for.

        Returns:
            A :class:`Prediction` (class, probabilities, gates, node ids).

        Raises:
            GraphError: the graph does not fit the model (see :meth:`prepare`).
            ConfigError: bad node ids.
        """
        from framekd.distill import predict_student, predict_teacher

        start = time.perf_counter()
        graph = self.prepare(data)
        n = int(graph.num_nodes)
        index = None if nodes is None else self.node_index(nodes, n)
        at = torch.arange(n) if index is None else index
        info = None
        if self.is_teacher:
            with torch.no_grad():
                logits = predict_teacher(self.model, graph)
            if index is not None:
                logits = logits[index.to(logits.device)]
            gates = None
        else:
            k = None
            if self.uses_knowledge:
                k, info = self.knowledge(graph, index)
            x = graph.x if index is None else graph.x[index.to(graph.x.device)]
            if self.dtype != torch.float32:
                x, k = x.to(self.dtype), None if k is None else k.to(self.dtype)
            with torch.no_grad():
                out = predict_student(self.model, x, k,
                                      batch_size=self.config.student.batch_size)
            logits = out.logits.float()
            gates = None if out.gates is None else out.gates.float()
        return Prediction(
            nodes=at, logits=logits.detach().cpu(),
            gates=None if gates is None else gates.detach().cpu(), model=self.name,
            seed=self.seed, training_nodes=self.training_nodes, knowledge=info,
            seconds=time.perf_counter() - start, label_map=self.label_map)


#: Precisions :class:`Predictor` runs a student in.
DTYPES = ("float32", "bfloat16")


def _dtype(dtype: str | torch.dtype, name: str, is_teacher: bool) -> torch.dtype:
    """The ``dtype`` argument of :class:`Predictor` as a :class:`torch.dtype`, checked."""
    text = str(dtype).removeprefix("torch.")
    if text not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if is_teacher and text != "float32":
        raise ConfigError(f"{name!r} is a teacher: teachers run in float32 only (their sparse "
                          "graph products have no bfloat16 kernel on CPU); drop the dtype or "
                          "predict with a student")
    return getattr(torch, text)
