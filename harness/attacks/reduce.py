"""Sparse mode, part (b): revert the flips an adversarial example does not need.

A harness addition beyond the paper (G2S changes far more events than later attacks need;
../shared/notes/attack-spec.md, "Measured here"). For each successful row, with its flips
ordered most useful first:

1. prefix search: bisect for a short prefix of the ordered flips that is still adversarial
   (keeping the first k flips and reverting the rest; about log2(L0) trials);
2. greedy halving: try reverting chunks of the kept flips, least useful first, with chunk
   sizes halving down to single flips; a chunk stays reverted when the example stays
   adversarial.

Every trial is judged on the unchanged model with the attack's success rule, so the result is
adversarial by construction. All rows advance together, one batched forward pass per round. A
row's trials form a sequence in which each candidate depends on the verdicts before it, so a
round judges the row's next candidate and, where the pass has room (fewer rows than
``batch_size``), also the candidates that would follow it: a tree of the next verdicts, grown
most likely branch first (:func:`_speculate`). The row then advances along the verdicts that
actually came, as far as the judged candidates reach; the others are discarded. A row stops
after ``MAX_TRIALS`` trials (discarded candidates do not count), bounding the cost for rows
with many flips. A row's result therefore depends only on its own trials, never on its batch,
and is the same as judging one candidate per round.
"""
from __future__ import annotations

import copy
import heapq

import numpy as np

from ..models import SpikingNetwork
from .judge import judge

#: Trials (candidate examples judged) per row, prefix search included.
MAX_TRIALS = 128


class _RowReduction:
    """The trial sequence of one row: prefix search, then greedy halving."""

    def __init__(self, order: np.ndarray, pred: int):
        self.order = order                  # flat indices of the flips, most useful first
        self.best, self.pred = order, pred  # smallest adversarial set found so far, its prediction
        self.lo, self.hi = 0, len(order)    # keeping lo flips fails (clean), keeping hi succeeds
        self.kept: np.ndarray | None = None  # greedy phase: kept flips, least useful first
        self.chunk = self.pos = self.trials = 0
        self.trial: np.ndarray | None = None
        self.kept_chunks = self.reverted_chunks = 0  # greedy verdicts so far (speculation odds)

    def next_trial(self) -> np.ndarray | None:
        """Flips to keep in the next candidate, or None when this row is done."""
        if self.trials >= MAX_TRIALS:
            return None
        if self.kept is None and self.hi - self.lo > 1:
            self.trial = self.order[:(self.lo + self.hi) // 2]
        else:
            if self.kept is None:
                self.kept = self.best[::-1]
                self.chunk = len(self.kept) // 2
            while self.chunk and self.pos >= len(self.kept):
                self.chunk, self.pos = self.chunk // 2, 0
            if not self.chunk:
                return None
            self.trial = np.delete(self.kept, np.s_[self.pos:self.pos + self.chunk])
        self.trials += 1
        return self.trial

    def result(self, adversarial: bool, pred: int) -> None:
        """Record the judgement of the candidate from the last :meth:`next_trial`."""
        if adversarial:
            self.best, self.pred = self.trial, pred
        if self.kept is None:
            self.lo, self.hi = (self.lo, len(self.trial)) if adversarial else (len(self.trial), self.hi)
        elif adversarial:
            self.kept = self.trial
            self.reverted_chunks += 1
        else:
            self.pos += self.chunk
            self.kept_chunks += 1

    def p_adversarial(self) -> float:
        """Estimated chance that the next candidate is adversarial: 1/2 in the prefix search
        (a bisection), the row's own rate of reverted chunks so far in the greedy phase."""
        if self.kept is None and self.hi - self.lo > 1:
            return 0.5
        return (self.reverted_chunks + 1) / (self.reverted_chunks + self.kept_chunks + 2)


class _Node:
    """One speculative candidate: the row state just before it is judged, and its flips."""

    def __init__(self, state: _RowReduction, trial: np.ndarray, reach: float, path: tuple[bool, ...]):
        self.state, self.trial, self.reach, self.path = state, trial, reach, path


def _speculate(state: _RowReduction, width: int) -> list[_Node]:
    """Up to ``width`` candidates of the row's coming trials, the next one first.

    A tree over the next verdicts: each node's children are the candidates that follow a
    non-adversarial and an adversarial verdict. Nodes are taken most likely to be reached first
    (probabilities from :meth:`_RowReduction.p_adversarial`), so a width of 1 is the next trial.
    ``state`` is not changed.
    """
    first = copy.copy(state)
    trial = first.next_trial()
    if trial is None:
        return []
    nodes: list[_Node] = []
    heap = [(-1.0, 0, _Node(first, trial, 1.0, ()))]
    pushed = 1  # tie-break: among equally likely nodes, the earlier grown first
    while heap and len(nodes) < width:
        _, _, node = heapq.heappop(heap)
        nodes.append(node)
        p = node.state.p_adversarial()
        for verdict, odds in ((False, 1 - p), (True, p)):
            child = copy.copy(node.state)
            child.result(verdict, node.state.pred)
            child_trial = child.next_trial()
            if child_trial is not None:
                reach = node.reach * odds
                heapq.heappush(heap, (-reach, pushed, _Node(child, child_trial, reach, (*node.path, verdict))))
                pushed += 1
    return nodes


def _advance(state: _RowReduction, nodes: list[_Node], verdicts: dict[tuple[bool, ...], tuple[bool, int]]) -> None:
    """Advance ``state`` along the verdicts that came, as far as the judged candidates reach."""
    judged = {node.path: node for node in nodes}
    path: tuple[bool, ...] = ()
    while path in judged:
        trial = state.next_trial()
        if trial is None or not np.array_equal(trial, judged[path].trial):  # a bug, never bad input
            raise RuntimeError("reduction: the row's next trial is not the one judged for it")
        adversarial, pred = verdicts[path]
        state.result(adversarial, pred)
        path = (*path, adversarial)


def _with_flips(clean: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """``clean`` with the elements at flat indices ``flips`` flipped."""
    x = clean.copy()
    x.reshape(-1)[flips] ^= 1
    return x


def _widths(rows: int, batch_size: int) -> list[int]:
    """Candidates per row in a round: the pass's room shared out, at least one each."""
    base, extra = divmod(max(batch_size, rows), rows)
    return [base + (i < extra) for i in range(rows)]


def reduce_flips(net: SpikingNetwork, clean: np.ndarray, orders: list[np.ndarray], pred: np.ndarray,
                 labels: np.ndarray, targets: np.ndarray, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Reduce successful adversarial examples.

    Args:
        clean: (M, *shape, T) uint8 clean inputs of the successful rows.
        orders: M arrays of flat indices of each row's flips, most useful first (all of them
            together make the adversarial example).
        pred: (M,) predictions of the unreduced adversarial examples.
        labels, targets: (M,) true classes and targets (-1 = untargeted).
        batch_size: candidates per forward pass (does not change results).
    Returns:
        (adversarial (M, *shape, T) uint8, pred (M,) int64) of the reduced examples.
    """
    states = [_RowReduction(order, int(p)) for order, p in zip(orders, pred)]
    active = list(range(len(states)))
    while active:
        widths = _widths(len(active), batch_size)
        trees = {i: nodes for i, w in zip(active, widths) if (nodes := _speculate(states[i], w))}
        if not trees:
            break
        rows = np.array([i for i, nodes in trees.items() for _ in nodes])
        candidates = np.stack([_with_flips(clean[i], node.trial) for i, nodes in trees.items() for node in nodes])
        verdict_pred, verdict = judge(net, candidates, labels[rows], targets[rows], batch_size)
        at = 0
        for i, nodes in trees.items():
            verdicts = {node.path: (bool(verdict[at + j]), int(verdict_pred[at + j])) for j, node in enumerate(nodes)}
            _advance(states[i], nodes, verdicts)
            at += len(nodes)
        active = list(trees)
    adversarial = np.stack([_with_flips(c, s.best) for c, s in zip(clean, states)])
    return adversarial, np.array([s.pred for s in states], dtype=np.int64)
