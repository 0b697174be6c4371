"""Energy ("sponge") attacks: G2S ascent on the hidden layers' activity, in the attack loop.

Shumailov et al., "Sponge Examples: Energy-Latency Attacks on Neural Networks" (IEEE EuroS&P
2021), here in the spike domain: flip input events so that the network does more work. The
attack is a loss of :mod:`harness.attacks.loop` (``loss = "energy"`` or ``"energy-stealthy"``),
run by the same pooled loop, G2S/RSF updates, budgets and per-row generators as the other
attacks; this module holds the objective and the per-row bookkeeping that replaces "stop at
the first success".

Objective (per row, differentiable through SLAYER's surrogate gradient), one of
:data:`ENERGY_OBJECTIVES` (``AttackConfig.energy_objective``):

- ``"hidden-synops"`` (default): the synaptic operations of the hidden layers, A = sum over
  every spiking layer but the output of (spikes of neuron i over the window) x (fan-out of
  neuron i), the fan-out being the non-zero synapses (quantized weights) leaving the neuron:
  the work the network generates itself;
- ``"synops"``: the same plus the input stream's (input events x their fan-out into the first
  layer): every synaptic operation of the network, what the device's energy counts. Its input
  term is a fixed positive gradient (each element's fan-out), so G2S draws the elements with
  a large fan-out more often and a budget-aware update (``budget_mode = "truncate"``) keeps
  the largest; without a budget it flips thousands of elements.

For a dense next layer the fan-out is exact; for a conv next layer a neuron's fan-out is
taken as the non-zero weights of its channel over all output channels and kernel positions
(border neurons, which reach fewer positions, are counted in full). The device figures
(:func:`harness.stages.measure.energy_measurements`) count every synaptic operation.

Per row, the *activity ratio* of an example is A(example) / A(clean); a clean row whose
hidden layers are silent has ratio 1 while they stay silent and +inf once they spike. A row
runs all K iterations (no stop at a first success), unless ``energy_target`` R is set and its
ratio reaches R, or its budget is spent. It keeps the *best* example met (highest ratio,
earliest on ties) as its adversarial example, and for every budget b of
:data:`ENERGY_BUDGETS` the best ratio among the examples met with L0 <= b
(``activity_by_budget``; the clean input, ratio 1, counts at every budget).

Success of an energy row: its best ratio reached ``energy_target`` R, or, with no target,
exceeds 1 (the attack raised the activity at all). Rows the model misclassifies before the
attack are not attacked, as for every attack.

Stealthy mode (``"energy-stealthy"``): an update after which the prediction differs from the
clean prediction is rejected: the row goes back to its previous example, and its next update
is drawn afresh (new Bernoulli draws) from that example's gradient. Every example it keeps
therefore has the clean prediction.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ..metrics import predict
from ..models import ENERGY_LOSSES
from ..records import DEFAULT_BUDGETS, AttackRecord
from ..train import forward_batches
from .baselines import RANDOM_STREAM, random_flip_inputs
from .invariant import _effective_weight
from .randomness import row_generators

#: What an energy attack ascends (module docstring).
ENERGY_OBJECTIVES = ("hidden-synops", "synops")
#: Budgets (flips) at which an energy record keeps the best activity ratio.
ENERGY_BUDGETS = DEFAULT_BUDGETS


def is_energy_loss(name: str | None) -> bool:
    """True for the energy losses (``energy``, ``energy-stealthy``)."""
    return name in ENERGY_LOSSES


def fan_out(net) -> list[torch.Tensor]:
    """The fan-out of every input element and every hidden neuron.

    Returns:
        One float32 tensor for the input, then one per hidden layer (every spiking block but
        the last), each shaped like that population for one sample without time ((C, H, W)
        or (n,)): the non-zero quantized synapses leaving each element or neuron.
    Raises:
        ConfigError: the network has no hidden layer (nothing for an energy attack to load).
    """
    blocks = net.spiking_blocks
    if len(blocks) < 2:
        raise ConfigError("an energy attack needs a network with at least one hidden layer")
    shapes = [tuple(net.spec.input_shape)] + _layer_shapes(net)
    fan_out = []
    for shape, after in zip(shapes, blocks):
        weight = _effective_weight(after.synapse)  # (out, in * kernel)
        n_in = int(np.prod(shape))
        if weight.shape[1] == n_in:  # dense after this layer (flattened in SLAYER's order)
            counts = (weight != 0).sum(0).to(torch.float32)
        else:  # conv: one fan-out per input channel
            channels = weight.reshape(len(weight), shape[0], -1)
            per_channel = (channels != 0).sum((0, 2)).to(torch.float32)
            counts = per_channel.view(-1, *[1] * (len(shape) - 1)).expand(*shape).reshape(-1)
        fan_out.append(counts.reshape(shape))
    return fan_out


def _layer_shapes(net) -> list[tuple[int, ...]]:
    """Output shape of every spiking block for one sample, without time."""
    with torch.no_grad():
        layers = net.forward_layers(torch.zeros((1, *net.spec.input_shape, net.spec.steps)))
    return [tuple(out.shape[1:-1]) for out in layers]


def populations(net, x: torch.Tensor) -> list[torch.Tensor]:
    """The input ``x`` (N, *input_shape, T) followed by every spiking layer's output spikes."""
    return [x] + net.forward_layers(x)


class SynapticOps(torch.nn.Module):
    """The energy objective (module docstring): ``"hidden-synops"`` or ``"synops"``."""

    def __init__(self, net, objective: str = ENERGY_OBJECTIVES[0]):
        super().__init__()
        if objective not in ENERGY_OBJECTIVES:
            raise ConfigError(f"unknown energy objective '{objective}'; available: {', '.join(ENERGY_OBJECTIVES)}")
        self.objective = objective
        self.fan_out = fan_out(net)
        self.first = 0 if objective == "synops" else 1  # the input stream counts, or not

    def per_row(self, pops: list[torch.Tensor]) -> torch.Tensor:
        """(N,) synaptic operations from :func:`populations` (input first, output last; (N, *shape, T) each)."""
        total = torch.zeros(len(pops[0]), dtype=torch.float32)
        for spikes, fan in list(zip(pops[:-1], self.fan_out))[self.first:]:
            total = total + (spikes.sum(-1) * fan).flatten(1).sum(1)
        return total

    def forward(self, pops: list[torch.Tensor], cls: torch.Tensor | None = None) -> torch.Tensor:
        """Summed over the batch (a scalar to ascend); ``cls`` is ignored (untargeted)."""
        return self.per_row(pops).sum()


def activity_ratio(activity: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """activity / clean per row; a silent clean row gives 1 while silent, +inf once active."""
    activity, clean = np.asarray(activity, dtype=np.float64), np.asarray(clean, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(clean > 0, activity / np.where(clean > 0, clean, 1.0), np.where(activity > 0, np.inf, 1.0))


def energy_success(ratio: np.ndarray, target: float | None) -> np.ndarray:
    """(R,) bool: an energy row succeeded (ratio >= target, or > 1 without a target)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    return ratio >= target if target is not None else ratio > 1.0


class EnergyTracker:
    """Per-row state of an energy attack, used by the loop in place of "stop at success".

    Attributes (R rows):
        clean_activity: (R,) hidden synops of the clean input (NaN until judged).
        best_ratio: (R,) best activity ratio met (NaN: never judged).
        best_l0, best_pred: (R,) flips and prediction of the best example.
        by_budget: (R, B) best ratio among the examples with L0 <= each of ``budgets``.
    """

    def __init__(self, net, rows: int, stealthy: bool, target: float | None, objective: str = ENERGY_OBJECTIVES[0],
                 budgets=ENERGY_BUDGETS):
        self.objective = SynapticOps(net, objective)
        self.stealthy, self.target = stealthy, target
        self.budgets = np.asarray(budgets, dtype=np.int64)
        self.clean_activity = np.full(rows, np.nan)
        self.best_ratio = np.full(rows, np.nan)
        self.best_l0 = np.zeros(rows, dtype=np.int64)
        self.best_pred = np.full(rows, -1, dtype=np.int64)
        self.by_budget = np.full((rows, len(self.budgets)), np.nan)
        self.rejected_updates = np.zeros(rows, dtype=np.int64)
        #: stealthy: row -> (example, its gradient or None, its L0, its prediction, its activity)
        self.kept: dict[int, tuple] = {}

    def reject(self, rows: np.ndarray, pred: np.ndarray, pred_clean: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        """(P,) bool: the stealthy updates to undo (the prediction left the clean one)."""
        if not self.stealthy:
            return np.zeros(len(rows), dtype=bool)
        bad = ~fresh & (pred != pred_clean)
        self.rejected_updates[rows[bad]] += 1
        return bad

    def restore(self, row: int) -> tuple:
        """The last kept (example, gradient, L0, prediction, activity) of a stealthy row."""
        return self.kept[row]

    def keep(self, row: int, example: torch.Tensor, grad: torch.Tensor | None, l0: int, pred: int,
             activity: float) -> None:
        """Remember a stealthy row's accepted example (to go back to if the next update is rejected)."""
        if self.stealthy:
            self.kept[row] = (example.clone(), None if grad is None else grad.clone(), l0, pred, activity)

    def observe(self, rows: np.ndarray, activity: np.ndarray, l0: np.ndarray, pred: np.ndarray,
                fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Judge the rows' current examples (after any rejection).

        Returns:
            (improved (P,) bool: the example is the row's best so far, reached (P,) bool: its
            best ratio reached the target).
        """
        self.clean_activity[rows[fresh]] = activity[fresh]
        ratio = activity_ratio(activity, self.clean_activity[rows])
        best = self.best_ratio[rows]
        improved = np.isnan(best) | (ratio > best)
        better = rows[improved]
        self.best_ratio[better], self.best_l0[better], self.best_pred[better] = ratio[improved], l0[improved], pred[improved]
        within = l0[:, None] <= self.budgets[None, :]
        current = self.by_budget[rows]
        self.by_budget[rows] = np.where(within & ~(current >= ratio[:, None]), ratio[:, None], current)
        reached = ~fresh & (self.best_ratio[rows] >= self.target) if self.target is not None \
            else np.zeros(len(rows), dtype=bool)
        return improved, reached

    def success(self, correct: np.ndarray) -> np.ndarray:
        """(R,) bool success of every row (:func:`energy_success`), only where ``correct``."""
        return correct & energy_success(np.nan_to_num(self.best_ratio, nan=1.0), self.target)

    def arrays(self, correct: np.ndarray) -> dict[str, np.ndarray]:
        """The record's energy datasets: NaN for rows that were not attacked."""
        ratio = np.where(correct, self.best_ratio, np.nan)
        return {"activity_ratio": ratio, "activity_by_budget": np.where(correct[:, None], self.by_budget, np.nan)}

    def attrs(self) -> dict:
        """The record's ``energy`` attribute (stored as JSON; docs/attacks.md)."""
        return {"energy": energy_attrs(self.budgets, self.objective.objective, self.target, self.stealthy,
                                       int(self.rejected_updates.sum()))}


def energy_attrs(budgets, objective: str, target: float | None, stealthy: bool, rejected_updates: int = 0) -> dict:
    """An energy record's ``energy`` attribute: budgets of ``activity_by_budget`` (flips), the
    objective, the target (None: success = ratio > 1), the mode and the rejected updates."""
    return {"budgets": [int(b) for b in budgets], "objective": objective, "target": target,
            "stealthy": stealthy, "rejected_updates": rejected_updates}


def random_energy_record(net, reference: AttackRecord, seed: int, batch_size: int = 128) -> AttackRecord:
    """Random flips at every attacked row's final L0 of the energy attack ``reference``.

    Unlike :func:`harness.attacks.baselines.random_flips` (which keeps a flipped example only
    where it fools the model), every row keeps its flipped example: the comparison is the
    activity it causes. The record has the energy datasets (``activity_ratio`` of the flipped
    example, ``activity_by_budget`` at the budgets >= its L0) and success as for an energy
    row (:func:`energy_success` with the reference's target); ``pred_adv`` is the model's
    prediction on the flipped example.
    """
    ref = reference
    rows = len(ref)
    correct = ref.correct_before.astype(bool)
    flips = np.where(correct, ref.l0, 0)
    noisy = np.empty_like(ref.clean)
    for start in range(0, rows, batch_size):
        part = slice(start, start + batch_size)
        noisy[part] = random_flip_inputs(ref.clean[part], flips[part], row_generators(
            seed, ref.sample_index[part], ref.targets[part], stream=RANDOM_STREAM))
    objective = SynapticOps(net, ref.attrs.get("energy", {}).get("objective", ENERGY_OBJECTIVES[0]))
    clean_activity, _ = _activity(net, objective, ref.clean, batch_size)
    activity, pred = _activity(net, objective, noisy, batch_size)
    ratio = np.where(correct, activity_ratio(activity, clean_activity), np.nan)
    settings = ref.attrs.get("energy", {})
    budgets = np.asarray(settings.get("budgets", ENERGY_BUDGETS), dtype=np.int64)
    by_budget = np.where(flips[:, None] <= budgets[None, :], ratio[:, None], 1.0)
    target = settings.get("target")
    won = correct & energy_success(np.nan_to_num(ratio, nan=1.0), target)
    return AttackRecord(
        clean=ref.clean, adversarial=noisy, labels=ref.labels, targets=ref.targets, sample_index=ref.sample_index,
        pred_clean=ref.pred_clean, pred_adv=pred, correct_before=correct, success=won, l0=flips,
        l0_before_reduction=flips, l0_at_success=np.where(won, flips, -1), iterations=(flips > 0).astype(np.int64),
        rsf_iterations=np.zeros(rows, dtype=np.int64), zero_grad_iterations=np.full(rows, -1, dtype=np.int64),
        activity_ratio=ratio, activity_by_budget=np.where(correct[:, None], by_budget, np.nan),
        attrs={"method": "random", "params": {"seed": seed}, "seed": seed,
               "energy": energy_attrs(budgets, objective.objective, target, stealthy=False)})


def _activity(net, objective: SynapticOps, spikes: np.ndarray, batch_size: int):
    """(objective (N,), predictions (N,)) of the model on ``spikes``."""
    activity, preds = [], []
    for start, layers in zip(range(0, len(spikes), batch_size), forward_batches(net, spikes, batch_size)):
        x = torch.as_tensor(spikes[start:start + batch_size], dtype=torch.float32)
        activity.append(objective.per_row([x] + layers).numpy().astype(np.float64))
        preds.append(predict(layers[-1].sum(-1).numpy()))
    return np.concatenate(activity), np.concatenate(preds)
