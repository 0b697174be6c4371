"""The batched iterative attack: G2S with RSF on vanishing gradients, G2S alone, or RSF alone.

../shared/notes/attack-spec.md, "The attack loop". Per row (a sample, or a (sample, target)
pair), up to K iterations of: forward pass with gradient -> G2S, or RSF where the row's
gradient is all zero -> overflow-aware update -> judge. A row stops as soon as it succeeds
(it then stops changing) or its L0 exceeds the budget (failed).

Options beyond the paper (each off by default, each in the attack id):
- ``loss = "margin"``: the count margin (:class:`harness.models.CountMargin`) instead of the
  paper's losses, which saturate (issue 14).
- ``threshold_mode = "fixed-surrogate"``: the attack-time threshold without rescaling SLAYER's
  surrogate width (:func:`harness.models.attack_threshold`).
- ``rsf_trigger_ratio = r > 0``: RSF also where the gradient nearly vanishes, max|g| < r times
  the row's max|g| at its first update (the paper: exactly zero only).
- ``loss = "energy"`` / ``"energy-stealthy"``: the energy ("sponge") attack
  (:mod:`harness.attacks.energy`): ascent on the hidden layers' synaptic operations; a row
  does not stop at a first success but runs its K iterations (or until ``energy_target`` or its
  budget), keeps its best example, and the stealthy mode undoes updates that change the
  prediction.
- ``budget_mode = "truncate"``: the budget is enforced inside every update (the spec's
  budget-aware RSF, and the same for G2S): new flips beyond the budget are dropped, most useful
  kept, so L0 never exceeds B; a row whose budget is spent is judged once more and stops.
  The default ``"stop"`` is the spec's rule: an update that takes L0 past B ends the row
  (failed) without being judged; successes therefore never exceed B either.

Stalled rows: a failed row is *stalled* when neither its prediction nor its count margin
(best other class minus true class; targeted: best non-target minus target, in spikes) changed
over its last :data:`STALL_WINDOW` iterations: the objective stopped moving it, whatever the
gradient looked like. The record stores it per row (``stalled``).

Batching: a pool of up to ``batch_size`` rows shares every pass; a finished row leaves the
pool and the next row enters, so the pool stays full. One batched forward+backward per
iteration does two jobs: its output judges the example made by the previous update (success,
or the clean prediction on a row's first pass), and its gradient drives the next update, so no
second forward pass is needed. Only with an attack-time threshold does judging need its own
forward pass on the unchanged model.

Determinism: every row draws its randomness from its own generator
(:mod:`harness.attacks.randomness`), and the passes run under
:func:`harness.attacks.invariant.batch_invariant`, which makes each sample's gradient the same
bits in any batch. The same inputs, model and seed give byte-identical adversarial spikes
whatever the batch size.
"""
from __future__ import annotations

import contextlib
import itertools
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..settings import SettingError, check_types
from ..metrics import predict
from ..models import (ATTACK_LOSSES, ATTACK_SURROGATES, THRESHOLD_MODES, SpikingNetwork, attack_surrogate,
                      attack_threshold, count_margin, make_loss, net_device, torch_device)
from .threats import FLIP_THREATS, allowed_update
from .g2s import apply_update, g2s_from_uniform, per_sample_peak, restrict_to_budget
from .invariant import batch_invariant
from .energy import ENERGY_OBJECTIVES, EnergyTracker, is_energy_loss, populations
from .judge import check_spikes
from .randomness import row_generators, uniform
from ..records import AttackRecord, is_success
from .reduce import reduce_flips
from .rsf import rsf_from_uniform, rsf_priority

METHODS = ("g2s-rsf", "g2s", "rsf")
BUDGET_MODES = ("stop", "truncate")
#: Iterations without any change of prediction and count margin after which a failed row is
#: "stalled" (5 of the reference's K = 25: long enough that a row still climbing in small
#: steps is not counted, short enough to see a stall that began late).
STALL_WINDOW = 5


@dataclass(frozen=True)
class AttackConfig:
    """Settings of an iterative attack.

    Attributes:
        method: "g2s-rsf" (the paper's attack), "g2s" (no RSF: an all-zero gradient changes
            nothing) or "rsf" (RSF every iteration, no gradient).
        iterations: maximum number of updates K per row.
        gamma: RSF turnover rate (expected fraction of elements flipped).
        eta: G2S step scale in (0, 1] (sparse mode < 1).
        reduce: run the reduction pass on successful rows (sparse mode).
        max_flips / max_flip_rate: L0 budget in flips, or as a fraction of the elements
            (at most one of them; None = no budget).
        attack_threshold: penultimate-layer threshold during the gradient pass only.
        loss: "spike-rate", "cross-entropy" or "margin" (count margin); None = the model's
            training loss.
        seed: seeds every row's generator.
        threshold_mode: with ``attack_threshold``: "scale-surrogate" (SLAYER's surrogate width
            scaled with the threshold) or "fixed-surrogate" (the threshold alone, the paper's).
        rsf_trigger_ratio: 0 = RSF where max|g| == 0 (the paper); r in (0, 1) = also where
            max|g| < r * the row's max|g| at its first update ("g2s-rsf" only).
        budget_mode: "stop" (the spec: a row whose L0 exceeds the budget stops, failed) or
            "truncate" (flips beyond the budget are never made; the row stops when it is spent).
        energy_target: energy losses only: stop a row once its activity ratio (hidden-layer
            synops, adversarial / clean) reaches this value (> 1); success = reached it. None:
            every row runs its K iterations, success = ratio > 1.
        energy_objective: energy losses: "hidden-synops" (the hidden layers' synaptic
            operations) or "synops" (the input stream's too: all the device counts).
        threat: "flips" (any element may flip), "add-only" (no clean spike is ever removed) or
            "delete-only" (no spike is ever added): see :mod:`harness.attacks.threats`.
        surrogate: "model" (the model's own surrogate gradient) or "pdsg" (PDSG in every spiking
            layer during the attack: :func:`harness.models.attack_surrogate`; g2s-rsf and g2s).
    """

    method: str = "g2s-rsf"
    iterations: int = 25
    gamma: float = 0.05
    eta: float = 1.0
    reduce: bool = False
    max_flips: int | None = None
    max_flip_rate: float | None = None
    attack_threshold: float | None = None
    loss: str | None = None
    seed: int = 0
    threshold_mode: str = "scale-surrogate"
    rsf_trigger_ratio: float = 0.0
    budget_mode: str = "stop"
    energy_target: float | None = None
    energy_objective: str = ENERGY_OBJECTIVES[0]
    threat: str = "flips"
    surrogate: str = "model"

    def __post_init__(self) -> None:
        check_types(self)
        if self.method not in METHODS:
            raise SettingError("method", f"unknown attack method '{self.method}' ({{key}}); available: "
                               f"{', '.join(METHODS)}")
        checks = [("iterations", self.iterations >= 1, ">= 1"), ("gamma", 0 < self.gamma <= 1, "in (0, 1]"),
                  ("eta", 0 < self.eta <= 1, "in (0, 1]"),
                  ("max_flips", self.max_flips is None or self.max_flips >= 1, ">= 1"),
                  ("max_flip_rate", self.max_flip_rate is None or 0 < self.max_flip_rate <= 1, "in (0, 1]"),
                  ("attack_threshold", self.attack_threshold is None or self.attack_threshold > 0, "> 0"),
                  ("seed", self.seed >= 0, ">= 0"), ("rsf_trigger_ratio", 0 <= self.rsf_trigger_ratio < 1, "in [0, 1)")]
        for key, ok, bound in checks:
            if not ok:
                raise SettingError(key, f"must be {bound}, got {getattr(self, key)}")
        if self.max_flips is not None and self.max_flip_rate is not None:
            raise SettingError("max_flips", "cannot be combined with {}: give at most one budget", "max_flip_rate")
        if self.loss is not None and self.loss not in ATTACK_LOSSES:
            raise SettingError("loss", f"unknown loss '{self.loss}' ({{key}}); available: {', '.join(ATTACK_LOSSES)}")
        self._check_options()

    def _check_options(self) -> None:
        """The options beyond the paper: threshold_mode, rsf_trigger_ratio, budget_mode."""
        if self.threshold_mode not in THRESHOLD_MODES:
            raise SettingError("threshold_mode", f"unknown mode '{self.threshold_mode}' ({{key}}); "
                               f"available: {', '.join(THRESHOLD_MODES)}")
        if self.threshold_mode != THRESHOLD_MODES[0] and self.attack_threshold is None:
            raise SettingError("threshold_mode", f"'{self.threshold_mode}' needs {{}}", "attack_threshold")
        if self.rsf_trigger_ratio > 0 and self.method != "g2s-rsf":
            raise SettingError("rsf_trigger_ratio", f"applies to method g2s-rsf only, not '{self.method}'")
        if self.budget_mode not in BUDGET_MODES:
            raise SettingError("budget_mode", f"unknown mode '{self.budget_mode}' ({{key}}); "
                               f"available: {', '.join(BUDGET_MODES)}")
        if self.budget_mode != BUDGET_MODES[0] and self.max_flips is None and self.max_flip_rate is None:
            raise SettingError("budget_mode", f"'{self.budget_mode}' needs a budget ({{}} or {{}})",
                               "max_flips", "max_flip_rate")
        if self.threat not in FLIP_THREATS:
            raise SettingError("threat", f"unknown threat '{self.threat}' ({{key}}); available: "
                               f"{', '.join(FLIP_THREATS)}")
        if self.surrogate not in ATTACK_SURROGATES:
            raise SettingError("surrogate", f"unknown surrogate '{self.surrogate}' ({{key}}); available: "
                               f"{', '.join(ATTACK_SURROGATES)}")
        self._check_energy()

    def _check_energy(self) -> None:
        """energy_target: > 1, energy losses only; energy losses keep their best example (no reduction)."""
        if self.energy_target is not None:
            if not is_energy_loss(self.loss):
                raise SettingError("energy_target", f"applies to the energy losses only (given with {{}} "
                                   f"'{self.loss}')", "loss")
            if not self.energy_target > 1:
                raise SettingError("energy_target", f"must be > 1 (an activity ratio vs clean), got {self.energy_target}")
        if self.energy_objective not in ENERGY_OBJECTIVES:
            raise SettingError("energy_objective", f"unknown objective '{self.energy_objective}' ({{key}}); "
                               f"available: {', '.join(ENERGY_OBJECTIVES)}")
        if self.energy_objective != ENERGY_OBJECTIVES[0] and not is_energy_loss(self.loss):
            raise SettingError("energy_objective", f"applies to the energy losses only (given with {{}} "
                               f"'{self.loss}')", "loss")
        if is_energy_loss(self.loss) and self.reduce:
            raise SettingError("reduce", f"cannot be combined with {{}} '{self.loss}' (an energy attack keeps "
                               "its most active example, there is no success to keep while reverting flips)", "loss")

    def budget(self, numel: int) -> int | None:
        """The L0 budget in flips for inputs of ``numel`` elements (None: unlimited)."""
        if self.max_flip_rate is not None:
            return int(self.max_flip_rate * numel)
        return self.max_flips

    def to_dict(self) -> dict:
        """The settings as a dict; ``threat`` and ``surrogate`` only when not the defaults (so the
        identities of files made before they existed stay valid)."""
        out = asdict(self)
        if out["threat"] == FLIP_THREATS[0]:
            del out["threat"]
        if out["surrogate"] == ATTACK_SURROGATES[0]:
            del out["surrogate"]
        return out


def craft(net: SpikingNetwork, clean: np.ndarray, labels: np.ndarray, config: AttackConfig,
          targets: np.ndarray | None = None, sample_index: np.ndarray | None = None,
          batch_size: int = 128, progress: bool = False, device: str = "cpu") -> AttackRecord:
    """Attack every row; return the per-row record (attrs: ``method`` and ``params``).

    Args:
        net: the model (eval mode); judged unchanged, its threshold overridden only inside
            the gradient pass when ``config.attack_threshold`` is set.
        clean: (R, *input_shape, T) binary spikes, one row per (sample, target).
        labels: (R,) true classes.
        config: the attack settings.
        targets: (R,) target classes, -1 (or None for all) = untargeted.
        sample_index: (R,) index of each row's sample in the test split; seeds its generator
            (default 0..R-1).
        batch_size: rows per pass (does not change results).
        progress: show a progress bar over rows.
        device: torch device of the passes, "cpu" or "cuda" (CUDA sums in other orders, so its
            spikes are not the CPU's bits; success rates compare). ``net`` is moved there for
            the call and back to where it was.
    """
    clean = check_spikes(net, clean, "attack input")
    rows = len(clean)
    labels = np.asarray(labels, dtype=np.int64)
    targets = np.full(rows, -1, dtype=np.int64) if targets is None else np.asarray(targets, dtype=np.int64)
    sample_index = np.arange(rows) if sample_index is None else np.asarray(sample_index, dtype=np.int64)
    if not len(labels) == len(targets) == len(sample_index) == rows:
        raise ValueError(f"{rows} inputs but {len(labels)} labels, {len(targets)} targets, "
                         f"{len(sample_index)} sample indices")
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    where, home = torch_device(device), net_device(net)
    with _restored_to(net, home):
        attack = _IterativeAttack(net.to(where), clean, labels, targets, sample_index, config)
        with batch_invariant(net), attack_surrogate(net, config.surrogate), tqdm(total=rows, desc=f"attack {config.method}", unit="row",
                                        disable=not progress) as bar:
            attack.run(batch_size, bar)
            if config.reduce:
                bar.set_description("reduce")
                attack.reduce(batch_size)
    return attack.record()


@contextlib.contextmanager
def _restored_to(net: SpikingNetwork, device: torch.device):
    """Move ``net`` back to ``device`` on exit, also on error."""
    try:
        yield
    finally:
        net.to(device)


class _IterativeAttack:
    """Per-row state of one attack and the pooled iteration (see the module docstring)."""

    def __init__(self, net, clean, labels, targets, sample_index, config: AttackConfig):
        self.net, self.clean, self.labels, self.targets, self.config = net, clean, labels, targets, config
        self.sample_index = sample_index
        rows = len(clean)
        self.energy = EnergyTracker(net, rows, config.loss == "energy-stealthy", config.energy_target,
                                    config.energy_objective) if is_energy_loss(config.loss) else None
        self.loss_fn = self.energy.objective if self.energy is not None else make_loss(net.spec, config.loss)
        self.budget = config.budget(int(np.prod(clean.shape[1:])))
        self.use_grad = config.method != "rsf"
        self.keep_grad = self.use_grad and config.reduce  # gradient at success orders flips for reduction
        self.adversarial = clean.copy()
        self.pred_clean = np.full(rows, -1, dtype=np.int64)
        self.pred_adv = np.full(rows, -1, dtype=np.int64)
        self.success = np.zeros(rows, dtype=bool)
        self.l0_last = np.zeros(rows, dtype=np.int64)
        self.l0_at_success = np.full(rows, -1, dtype=np.int64)
        self.iterations = np.zeros(rows, dtype=np.int64)
        self.rsf_iterations = np.zeros(rows, dtype=np.int64)
        self.forward_passes = np.zeros(rows, dtype=np.int64)   # the loop's passes (the reduction's not counted)
        self.backward_passes = np.zeros(rows, dtype=np.int64)
        self.zero_grad_iterations = np.zeros(rows, dtype=np.int64) if self.use_grad else np.full(rows, -1, np.int64)
        self.flip_order: dict[int, np.ndarray] = {}  # row -> flat indices of its flips, most useful first
        self.margin = np.zeros(rows, dtype=np.int64)     # count margin at the last judged pass (spikes)
        self.pred_last = np.full(rows, -1, dtype=np.int64)  # prediction at the last judged pass
        self.unchanged = np.zeros(rows, dtype=np.int64)  # consecutive updates without a change of pred/margin
        self.first_peak = np.full(rows, np.nan)          # max|g| at the row's first update (RSF trigger)
        self.spent = np.zeros(rows, dtype=bool)          # budget_mode "truncate": L0 reached the budget
        self.generators: dict[int, torch.Generator] = {}
        self.device = net_device(net)                    # the passes' device; generators stay on the CPU

    # ------------------------------------------------------------ the pooled loop
    def run(self, batch_size: int, bar) -> None:
        """Iterate until every row has finished; the pool is refilled from the queue."""
        queue = iter(range(len(self.clean)))
        pool = np.zeros(0, dtype=np.int64)
        x = torch.zeros((0, *self.clean.shape[1:]), device=self.device)
        while True:
            fresh = np.fromiter(itertools.islice(queue, batch_size - len(pool)), dtype=np.int64)
            if len(fresh):
                self.generators.update(zip(fresh.tolist(), row_generators(
                    self.config.seed, self.sample_index[fresh], self.targets[fresh])))
                pool = np.concatenate([pool, fresh])
                x = torch.cat([x, torch.as_tensor(self.clean[fresh], dtype=torch.float32).to(self.device)])
            if not len(pool):
                return
            keep = self._step(pool, x)
            bar.update(int((~keep).sum()))
            pool, x = pool[keep], x[torch.as_tensor(keep, device=self.device)]

    def _step(self, pool: np.ndarray, x: torch.Tensor) -> np.ndarray:
        """Judge the pool's current examples, update the rows that go on; return their mask.

        ``x`` (P, *shape, T) is updated in place for the continuing rows.
        """
        k = self.iterations[pool]
        labels, targets = self.labels[pool], self.targets[pool]
        want_grad = self.use_grad and self.config.attack_threshold is None
        x_in = x.clone().requires_grad_() if want_grad else x
        with torch.set_grad_enabled(want_grad):
            out = self._forward(x_in)
        self.forward_passes[pool] += 1
        counts = (out[-1] if self.energy is not None else out).detach().sum(-1).cpu()
        pred = predict(counts.numpy())
        fresh = k == 0
        self.pred_clean[pool[fresh]] = pred[fresh]
        self._track_stall(pool, counts, pred, fresh)
        correct = ~fresh | (pred == labels)
        if self.energy is not None:
            return self._energy_step(pool, x, x_in, out, pred, fresh, correct)
        won = ~fresh & is_success(pred, labels, targets)
        go_on = correct & ~won & (k < self.config.iterations) & ~self.spent[pool]
        graded = go_on | (won & self.keep_grad)
        grad = self._gradient(x, x_in, out, pool, graded) if self.use_grad and graded.any() else None
        self._succeeded(pool, x, pred, won, grad)
        self._stopped(pool, ~correct | (~won & ~go_on))
        if go_on.any():
            over = self._update(pool, x, go_on, grad)
            self._stopped(pool, over)
            go_on &= ~over
        return go_on

    def _forward(self, x: torch.Tensor):
        """The model's output spikes (N, K, T), or for an energy loss the input and every
        spiking layer's spikes (:func:`harness.attacks.energy.populations`, the output last)."""
        return populations(self.net, x) if self.energy is not None else self.net(x)

    def _loss(self, outputs, index, cls: torch.Tensor) -> torch.Tensor:
        """The attack loss of the rows ``index`` of ``outputs`` (as :meth:`_forward` returns them)."""
        if self.energy is not None:
            return self.loss_fn([layer[index] for layer in outputs], cls)
        return self.loss_fn(outputs[index], cls)

    def _energy_step(self, pool, x, x_in, layers, pred, fresh, correct) -> np.ndarray:
        """:meth:`_step` for an energy loss: judge activity, undo rejected (stealthy) updates,
        keep each row's best example, update the rows that go on; return their mask."""
        tracker, k = self.energy, self.iterations[pool]
        activity = tracker.objective.per_row([layer.detach() for layer in layers]).numpy().astype(np.float64)
        rejected = tracker.reject(pool, pred, self.pred_clean[pool], fresh)
        kept_grad = {}
        for i in np.flatnonzero(rejected):  # back to the previous example, with its gradient
            row = int(pool[i])
            x[i], kept_grad[i], self.l0_last[row], pred[i], activity[i] = tracker.restore(row)
            if self.config.budget_mode == "truncate":
                self.spent[row] = self.l0_last[row] >= self.budget
        improved, reached = tracker.observe(pool, activity, self.l0_last[pool], pred, fresh)
        for i in np.flatnonzero(improved & correct):
            self.adversarial[pool[i]] = x[i].numpy().astype(np.uint8)
        go_on = correct & ~reached & (k < self.config.iterations) & ~self.spent[pool]
        grad = None
        if self.use_grad and go_on.any():
            graded = go_on & ~rejected
            grad = self._gradient(x, x_in, layers, pool, graded) if graded.any() else torch.zeros_like(x)
            for i, kept in kept_grad.items():
                grad[i] = kept
        for i in np.flatnonzero(go_on & ~rejected):
            row = int(pool[i])
            tracker.keep(row, x[i], None if grad is None else grad[i], int(self.l0_last[row]), int(pred[i]),
                         float(activity[i]))
        self._energy_finished(pool, ~go_on)
        if go_on.any():
            over = self._update(pool, x, go_on, grad)
            self._energy_finished(pool, over)
            go_on &= ~over
        return go_on

    def _energy_finished(self, pool, done) -> None:
        """Energy rows in ``done`` end with their best example (already in ``adversarial``)."""
        rows = pool[done]
        self.pred_adv[rows] = self.energy.best_pred[rows]
        for row in rows.tolist():
            del self.generators[row]
            self.energy.kept.pop(row, None)

    def _attack_class(self, pool: np.ndarray) -> np.ndarray:
        """(P,) the class each row's loss is taken at: the label (untargeted) or the target."""
        return np.where(self.targets[pool] < 0, self.labels[pool], self.targets[pool])

    def _track_stall(self, pool, counts: torch.Tensor, pred: np.ndarray, fresh: np.ndarray) -> None:
        """Count, per row, the updates in a row that changed neither the prediction nor the margin."""
        margin = count_margin(counts, torch.as_tensor(self._attack_class(pool))).numpy().astype(np.int64)
        same = ~fresh & (margin == self.margin[pool]) & (pred == self.pred_last[pool])
        self.unchanged[pool] = np.where(same, self.unchanged[pool] + 1, 0)
        self.margin[pool], self.pred_last[pool] = margin, pred

    def _gradient(self, x, x_in, out, pool, graded) -> torch.Tensor:
        """Input gradient (P, *shape, T) signed in the attack's direction; zero outside ``graded``."""
        index = torch.as_tensor(np.flatnonzero(graded), device=self.device)
        self.backward_passes[pool[graded]] += 1
        self.forward_passes[pool[graded]] += self.config.attack_threshold is not None  # its own pass
        cls = torch.as_tensor(self._attack_class(pool), device=self.device)[index]
        if self.config.attack_threshold is not None:  # a separate pass on the overridden model
            x_in = x[index].clone().requires_grad_(True)
            with attack_threshold(self.net, self.config.attack_threshold, self.config.threshold_mode):
                (part,) = torch.autograd.grad(self._loss(self._forward(x_in), slice(None), cls), x_in)
            grad = torch.zeros_like(x)
            grad[index] = part
        else:
            (grad,) = torch.autograd.grad(self._loss(out, index, cls), x_in)
        direction = torch.as_tensor(np.where(self.targets[pool] < 0, 1.0, -1.0), dtype=grad.dtype, device=self.device)
        return grad * direction.view(-1, *[1] * (grad.ndim - 1))  # ascend (untargeted) or descend (targeted)

    def _update(self, pool, x, go_on, grad) -> np.ndarray:
        """Apply one G2S/RSF update to the rows in ``go_on``; return the rows now over budget."""
        index = np.flatnonzero(go_on)
        rows = pool[index]
        sel = torch.as_tensor(index, device=self.device)
        current = x[sel]
        u = uniform([self.generators[r] for r in rows.tolist()], current.shape).to(self.device)
        if not self.use_grad:  # RSF alone
            update, priority = rsf_from_uniform(current, u, self.config.gamma), rsf_priority(u)
            self.rsf_iterations[rows] += 1
        else:
            update, priority = self._gradient_update(rows, current, grad[sel], u)
        clean = torch.as_tensor(self.clean[rows], dtype=current.dtype).to(self.device)
        update = allowed_update(clean, update, self.config.threat)
        if self.config.budget_mode == "truncate":
            update = restrict_to_budget(current, clean, update, self.budget, priority)
        x[sel] = current = apply_update(current, update)
        self.iterations[rows] += 1
        self.l0_last[rows] = (current != clean).flatten(1).sum(1).cpu().numpy()
        over = np.zeros_like(go_on)
        if self.budget is not None:
            over[index] = self.l0_last[rows] > self.budget
        if self.config.budget_mode == "truncate":
            self.spent[rows] = self.l0_last[rows] >= self.budget
        return over

    def _gradient_update(self, rows, current, g, u) -> tuple[torch.Tensor, torch.Tensor]:
        """G2S update of ``rows`` from their gradient ``g``, RSF where it triggers, and the
        priority of each drawn flip under a budget (|g| for G2S, :func:`rsf_priority` for RSF)."""
        magnitude = g.abs()
        peak = per_sample_peak(magnitude)
        self.zero_grad_iterations[rows] += (peak == 0).view(-1).cpu().numpy()
        update, priority = g2s_from_uniform(g, u, self.config.eta, magnitude), magnitude
        trigger = self._rsf_trigger(rows, peak)
        if trigger.any():
            update = torch.where(trigger, rsf_from_uniform(current, u, self.config.gamma), update)
            priority = torch.where(trigger, rsf_priority(u), priority)
            self.rsf_iterations[rows] += trigger.view(-1).cpu().numpy()
        return update, priority

    def _rsf_trigger(self, rows: np.ndarray, peak: torch.Tensor) -> torch.Tensor:
        """Rows (shaped like ``peak``, (P, 1, ..., 1) bool) whose update is RSF instead of G2S.

        "g2s-rsf": where max|g| == 0 (the paper) or, with ``rsf_trigger_ratio`` r > 0, where
        max|g| < r * the row's max|g| at its first update. "g2s": never.
        """
        flat = peak.view(-1).cpu().numpy().astype(np.float64)
        first = np.isnan(self.first_peak[rows])
        self.first_peak[rows[first]] = flat[first]
        if self.config.method != "g2s-rsf":
            return torch.zeros_like(peak, dtype=torch.bool)
        trigger = (flat == 0) | (flat < self.config.rsf_trigger_ratio * self.first_peak[rows])
        return torch.as_tensor(trigger, device=peak.device).view(peak.shape)

    def _succeeded(self, pool, x, pred, won, grad) -> None:
        """Record the rows in ``won``: their current example is adversarial."""
        for i in np.flatnonzero(won):
            row = int(pool[i])
            self.adversarial[row] = x[i].cpu().numpy().astype(np.uint8)
            self.success[row] = True
            self.pred_adv[row] = pred[i]
            self.l0_at_success[row] = self.l0_last[row]
            if self.config.reduce:
                self.flip_order[row] = self._flip_order(row, None if grad is None else grad[i])
            del self.generators[row]

    def _stopped(self, pool, failed) -> None:
        """Record the rows in ``failed`` (not attacked, over budget, out of iterations): rolled back."""
        stopped = pool[failed]
        self.pred_adv[stopped] = self.pred_clean[stopped]
        for row in stopped.tolist():
            del self.generators[row]

    def _flip_order(self, row: int, grad: torch.Tensor | None) -> np.ndarray:
        """Flat indices of a successful row's flips, most useful first.

        Usefulness is the first-order gain of the flip in the attack's direction at the
        adversarial example, g * (adv - clean); without a gradient (RSF alone) a random order
        from the row's generator.
        """
        change = self.adversarial[row].astype(np.int8) - self.clean[row]
        flips = np.flatnonzero(change)
        if grad is None:
            score = uniform(self.generators[row], (1, len(flips)))[0].numpy()
        else:
            score = grad.cpu().numpy().reshape(-1)[flips] * change.reshape(-1)[flips]
        return flips[np.argsort(-score, kind="stable")]

    # ------------------------------------------------------------ reduction and result
    def reduce(self, batch_size: int) -> None:
        """Revert flips of successful rows that are not needed (:func:`reduce_flips`)."""
        rows = np.array(sorted(self.flip_order), dtype=np.int64)
        if not len(rows):
            return
        adversarial, pred = reduce_flips(self.net, self.clean[rows], [self.flip_order[r] for r in rows],
                                         self.pred_adv[rows], self.labels[rows], self.targets[rows], batch_size)
        self.adversarial[rows] = adversarial
        self.pred_adv[rows] = pred

    def record(self) -> AttackRecord:
        correct = self.pred_clean == self.labels
        l0 = (self.adversarial != self.clean).reshape(len(self.clean), -1).sum(1).astype(np.int64)
        energy, energy_attrs = {}, {}
        if self.energy is not None:  # success = reached the target (or ratio > 1), at the best example's L0
            self.success = self.energy.success(correct)
            self.l0_at_success = np.where(self.success, l0, -1)
            energy, energy_attrs = self.energy.arrays(correct), self.energy.attrs()
        stalled = correct & ~self.success & (self.unchanged >= STALL_WINDOW)
        curve = {"kind": "final-l0", "enforced_budget": self.budget,
                 "budget_mode": self.config.budget_mode if self.budget is not None else None}
        return AttackRecord(
            clean=self.clean, adversarial=self.adversarial, labels=self.labels, targets=self.targets,
            sample_index=self.sample_index, pred_clean=self.pred_clean, pred_adv=self.pred_adv,
            correct_before=correct, success=self.success, l0=l0, l0_before_reduction=self.l0_last,
            l0_at_success=self.l0_at_success, iterations=self.iterations, rsf_iterations=self.rsf_iterations,
            zero_grad_iterations=self.zero_grad_iterations, stalled=stalled, forward_passes=self.forward_passes,
            backward_passes=self.backward_passes, queries=np.zeros(len(self.clean), np.int64), **energy,
            attrs={"method": self.config.method, "params": self.config.to_dict(), "seed": self.config.seed,
                   "stall_window": STALL_WINDOW, "budget_curve": curve, **energy_attrs})
