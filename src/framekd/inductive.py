r"""The inductive (production) setting of GLNN (docs/SPEC.md §9 "Settings").

In the transductive setting every node and edge is visible while the teacher trains, the
knowledge is computed and the students are distilled. The inductive setting asks what happens
to nodes that arrive *after* training. Per seed i:

1. **Split.** The protocol's split (train / val / test) is drawn as usual (seed i).
2. **Unseen nodes.** :data:`UNSEEN_FRACTION` (20 %) of the test nodes become *unseen*: a
   class-stratified random subset seeded with i (:func:`unseen_nodes`, via
   :func:`framekd.splits.stratified_subset`). Every other node is *observed*.
3. **Training sees the observed graph only** (:func:`observed_graph`): every edge touching an
   unseen node is removed, the unseen nodes' features are zeroed and their labels hidden
   (``-1``). The node ids are kept (an unseen node stays as an isolated, featureless
   placeholder), so the knowledge width, the sketch rows and the saved weights keep their
   meaning; with no edge and no features nothing of an unseen node reaches an observed row of
   any operator, a gradient or the soft labels. On this graph the teacher is trained (the
   framelet teachers with its framelet operator), the knowledge :math:`K_c^k M` is computed
   (per seed: the graph differs per seed; the knowledge cache is keyed by its hash) and the
   students are distilled from the teacher's soft labels on the **observed nodes only**
   (the distillation node set :math:`V_D` of docs/SPEC.md §6). The plain MLP row learns from
   the training labels alone, as in the transductive setting.
4. **Test time: the full graph is restored.** The teacher runs on the full graph (its
   forward on the full ``edge_index``; the framelet teachers with the full graph's
   operator). The students read the full graph's knowledge rows of the test nodes
   (:func:`knowledge_at_test_time`): the unseen nodes' rows only exist there, and the observed test
   nodes' rows change too (their neighbourhoods gained the unseen nodes), so every test node
   uses full-graph rows.
5. **Scores** (:func:`production_scores`): ``tran`` = accuracy on the observed test nodes,
   ``ind`` = accuracy on the unseen test nodes, ``prod`` = 0.8 ``tran`` + 0.2 ``ind``
   (:data:`PROD_WEIGHTS`). A run reports ``prod`` as its accuracy; a run scored by another
   metric (``metric: roc_auc`` ...) reports the same three for it as well
   (:func:`production_row`).

:func:`framekd.experiment.run_seed` runs this protocol when the configuration has
``setting: inductive``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data

from framekd.errors import SplitError
from framekd.splits import Split, make_split, stratified_subset

#: The settings a run accepts (configuration key ``setting``).
SETTINGS = ("transductive", "inductive")
#: Share of the test nodes that are unseen during training.
UNSEEN_FRACTION = 0.2
#: ``prod = PROD_WEIGHTS[0] * tran + PROD_WEIGHTS[1] * ind``.
PROD_WEIGHTS = (0.8, 0.2)
#: :func:`knowledge_at_test_time` computes rows locally (:func:`framekd.receptive.knowledge_rows`)
#: while the test nodes' receptive field has fewer than this share of the graph's nodes;
#: above it, the full graph's knowledge (computed once per graph, cached) is cheaper.
LOCAL_ROWS_MAX_FRACTION = 0.5


def unseen_nodes(split: Split, y: Tensor, seed: int,
                 fraction: float = UNSEEN_FRACTION) -> Tensor:
    """The unseen test nodes of ``split``: ``fraction`` of ``split.test``, stratified by class
    (:func:`framekd.splits.stratified_subset` with ``seed``); sorted int64 indices."""
    return stratified_subset(split.test, y, fraction, seed)


@dataclass
class InductiveSplit:
    """A split with its unseen test nodes.

    Attributes:
        split: the protocol's split (train / val / test over all nodes).
        unseen: the unseen test nodes (sorted, on the CPU).
        observed_test: the other test nodes (sorted, on the CPU).
        num_nodes: N.
    """

    split: Split
    unseen: Tensor
    observed_test: Tensor
    num_nodes: int

    @property
    def observed(self) -> Tensor:
        """Every node that is not unseen (sorted): the distillation node set."""
        mask = torch.ones(self.num_nodes, dtype=torch.bool)
        mask[self.unseen] = False
        return mask.nonzero().view(-1)

    @property
    def test_nodes(self) -> Tensor:
        """The test nodes, observed first then unseen: the rows :func:`production_scores`
        reads."""
        return torch.cat([self.observed_test, self.unseen])

    def training_split(self) -> Split:
        """The split training sees: the same train and val nodes, the observed test nodes as
        test (the unseen nodes are in no set)."""
        s = self.split
        return Split(s.train, s.val, self.observed_test, s.protocol, s.seed, list(s.notes))


def inductive_split(data: Data, protocol: str, seed: int,
                    fraction: float = UNSEEN_FRACTION) -> InductiveSplit:
    """The protocol's split of ``data`` for ``seed`` and its unseen test nodes.

    Raises:
        SplitError: the test set is too small to leave both an unseen and an observed test
            node.
    """
    split = make_split(data, protocol, seed)
    unseen = unseen_nodes(split, data.y, seed, fraction)  # on the CPU
    is_unseen = torch.zeros(data.num_nodes, dtype=torch.bool)
    is_unseen[unseen] = True
    test = split.test.cpu()
    observed_test = test[~is_unseen[test]]
    if unseen.numel() == 0 or observed_test.numel() == 0:
        raise SplitError(
            f"the inductive setting needs test nodes both unseen and observed, but protocol "
            f"'{protocol}' (seed {seed}) leaves {split.test.numel()} test node(s) of which "
            f"{unseen.numel()} would be unseen ({fraction:.0%}); use a protocol with a "
            "larger test set"
        )
    return InductiveSplit(split, unseen, observed_test, int(data.num_nodes))


def observed_graph(data: Data, unseen: Tensor) -> Data:
    """The graph training sees: ``data`` without the unseen nodes' edges, features and labels.

    Every edge with an unseen endpoint is removed (a canonical ``edge_index`` stays
    canonical), the unseen rows of ``x`` are zeroed and their labels set to ``-1``. The node
    count and ids are unchanged; other attributes are shared with ``data``.
    """
    n = int(data.num_nodes)
    is_unseen = torch.zeros(n, dtype=torch.bool, device=data.edge_index.device)
    is_unseen[unseen.to(is_unseen.device)] = True
    ei = data.edge_index
    keep = ~(is_unseen[ei[0]] | is_unseen[ei[1]])
    out = copy.copy(data)
    out.edge_index = ei[:, keep]
    rows = is_unseen.to(data.x.device)
    out.x = data.x.masked_fill(rows[:, None], 0.0)
    if data.y is not None:
        out.y = data.y.masked_fill(rows.to(data.y.device), -1)
    out.num_nodes = n
    return out


def prod_accuracy(tran: float, ind: float) -> float:
    """``prod = 0.8 tran + 0.2 ind`` (:data:`PROD_WEIGHTS`)."""
    return PROD_WEIGHTS[0] * tran + PROD_WEIGHTS[1] * ind


def production_scores(logits: Tensor, y: Tensor, isplit: InductiveSplit,
                      metric: str = "accuracy") -> dict[str, float]:
    """``{"tran", "ind", "prod"}`` scores of ``metric`` (:mod:`framekd.metrics`, accuracy by
    default) of predictions on the test nodes.

    ``logits`` has one row per node of ``isplit.test_nodes`` (observed test nodes first, then
    unseen ones), or one per node of the graph (N rows); ``y`` holds all N labels.
    """
    n_obs = isplit.observed_test.numel()
    rows = isplit.test_nodes
    if logits.size(0) == isplit.num_nodes and logits.size(0) != rows.numel():
        logits = logits[rows.to(logits.device)]
    if logits.size(0) != rows.numel():
        raise SplitError(
            f"expected predictions for the {rows.numel()} test nodes or all "
            f"{isplit.num_nodes} nodes, got {logits.size(0)} rows"
        )
    if metric == "accuracy":
        hit = (logits.argmax(-1).cpu() == y.cpu()[rows]).double()
        tran, ind = float(hit[:n_obs].mean()), float(hit[n_obs:].mean())
    else:
        from framekd.metrics import score

        logits, labels = logits.detach().cpu(), y.cpu()[rows]
        tran = score(metric, logits[:n_obs], labels[:n_obs], where="observed test")
        ind = score(metric, logits[n_obs:], labels[n_obs:], where="unseen test")
    return {"tran": tran, "ind": ind, "prod": prod_accuracy(tran, ind)}


def production_row(logits: Tensor, y: Tensor, isplit: InductiveSplit,
                   metric: str = "accuracy") -> dict[str, float]:
    """A model's scores in a result row: ``accuracy`` (= prod), ``tran_accuracy`` and
    ``ind_accuracy``, and with another ``metric`` the same three for it (``roc_auc``,
    ``tran_roc_auc``, ``ind_roc_auc`` ...)."""
    row: dict[str, float] = {}
    for name in dict.fromkeys(("accuracy", metric)):
        scores = production_scores(logits, y, isplit, name)
        row.update({name: scores["prod"], f"tran_{name}": scores["tran"],
                    f"ind_{name}": scores["ind"]})
    return row


def knowledge_at_test_time(
    data: Data, nodes: Tensor, spec: Any, operator: Any, *,
    full_knowledge: Callable[[], Tensor], max_fraction: float = LOCAL_ROWS_MAX_FRACTION,
    tol: float = 0.0,
) -> tuple[Tensor, dict[str, Any]]:
    """The full graph's knowledge rows of ``nodes`` at test time, and how they were obtained.

    With ``tol > 0`` the rows are the **approximate** rows of
    :func:`framekd.receptive.knowledge_rows` on the nodes' significant field (``"approx"``),
    whatever its size. Otherwise both ways give the same rows (up to float rounding;
    ``tests/test_inductive.py``):

    * ``"local"``: :func:`framekd.receptive.knowledge_rows` on the nodes' receptive field
      (the full graph's ``operator`` supplies settings, ε and λ_max), when the field holds
      fewer than ``max_fraction`` of the graph's nodes;
    * ``"full"``: rows of ``full_knowledge()``, the full graph's knowledge (the caller
      computes it once per graph, through the cache), when the field is most of the graph
      anyway (it is the whole component for the default settings on citation graphs).

    Returns ``(rows [C, K, len(nodes), width], info)``; ``info`` has ``method``, ``seconds``
    and the ``receptive_field`` (:class:`framekd.knowledge.ReceptiveField` as a dict).
    """
    from framekd.receptive import knowledge_rows, receptive_field

    start = time.perf_counter()
    if tol > 0:
        rows, field = knowledge_rows(data.edge_index, data.num_nodes, data.x, nodes, spec,
                                     operator=operator, tol=tol, return_field=True)
        return rows, {"method": "approx", "seconds": time.perf_counter() - start,
                      "receptive_field": field.to_dict()}
    field = receptive_field(data.edge_index, data.num_nodes, nodes, spec, operator=operator)
    if field.radius is not None and field.fraction < max_fraction:
        rows = knowledge_rows(data.edge_index, data.num_nodes, data.x, nodes, spec,
                              operator=operator)
        method = "local"
    else:
        full = full_knowledge()
        rows = full[:, :, nodes.to(full.device)]
        method = "full"
    info = {"method": method, "seconds": time.perf_counter() - start,
            "receptive_field": field.to_dict()}
    return rows, info
