"""Spike retiming: a timing-only attack that keeps every spike and moves it in time (untargeted).

After the spike-retiming attacks of Yu et al. (ICLR 2026, arXiv 2602.03284; code
github.com/yuyi-sd/Spike-Retiming-Attacks @19f42e6, ``utils/attack.py``:
``PGDTimeShiftAfterEncoder_Lowgpu``, ``_L1``, ``_L0``). An input channel is one element of the
input shape (polarity, y, x for N-MNIST) with its time line of T steps; a spike at time s may move
to time t. Budgets (:class:`RetimeBudget`), per row:

- ``inf:D``: every shift |t - s| <= D steps (B_inf);
- ``l1:N``: the shifts' total sum |t - s| <= N steps (B_1);
- ``l0:N``: at most N spikes moved (B_0).

Per row, with one logit per (spike, option): the 2D + 1 shifts for B_inf, the T target times for
B_1 and B_0:

1. pi = softmax(phi) over each spike's options; the soft input x_soft = sum of pi-weighted moved
   spikes (scatter-add, differentiable in phi);
2. the hard schedule :func:`project` (pi onto the budget, one spike per slot, every channel's
   count kept) is what the network sees, with the straight-through gradient of x_soft:
   x = x_hard + x_soft - x_soft.detach();
3. loss = CE(output spike counts, label) - 20 * occupancy penalty (mean of relu(E[occupancy] - 1)^2
   over the input's elements) - for B_1 10 relu(S - N) / N with S = E[total shift], for B_0
   5 relu(S - N) / N with S = E[spikes moved];
4. phi += sign(d loss / d phi), clamped to [-10, 10], for ``iterations`` steps (default 20 for
   B_inf, 40 for B_1 and B_0);
5. the row stops as soon as its hard schedule is misclassified (the forward pass of step 2 judges
   it); otherwise the last phi is projected and judged once more.

Ours differs from the authors' code: the budget is per row (theirs is shared by the batch; their
evaluation runs one row at a time); the loss is the cross-entropy of output spike counts (theirs
of the time-averaged output); each spike proposes only its best move and moves only when pi prefers
it to staying (theirs scan every (spike, target) pair, for B_inf with a nearest-free-slot fallback);
a move that does not fit the remaining budget is skipped, not the end of the scan; the same strict
projection serves the straight-through pass and the final schedule; the B_1/B_0 start prefers
staying (phi = 1 there, 0 elsewhere; theirs is uniform); a row stops at its first fooling
schedule; a seeded 0.01-scale Gaussian start breaks ties (their ``random_start``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..metrics import predict
from ..models import SpikingNetwork

#: Budget kinds: each shift (inf), total shift (l1), spikes moved (l0).
KINDS = ("inf", "l1", "l0")
#: Iterations of phi per budget kind when none are given (the authors' defaults).
DEFAULT_ITERATIONS = {"inf": 20, "l1": 40, "l0": 40}
#: Weights of the occupancy penalty and of the B_1 / B_0 budget penalties (the authors').
OCCUPANCY_WEIGHT = 20.0
BUDGET_WEIGHT = {"inf": 0.0, "l1": 10.0, "l0": 5.0}
#: Logit bound and the scale of the seeded random start.
PHI_BOUND, START_SCALE = 10.0, 0.01


@dataclass(frozen=True)
class RetimeBudget:
    """A timing budget: ``kind`` in :data:`KINDS`, ``size`` D (steps), N (steps) or N (spikes)."""

    kind: str
    size: int

    @classmethod
    def parse(cls, text: str, where: str = "--retime-budget") -> "RetimeBudget":
        """``"inf:2"`` -> RetimeBudget("inf", 2); ConfigError naming ``where`` for anything else."""
        kind, _, size = str(text).partition(":")
        try:
            value = int(size)
        except ValueError:
            value = None
        if kind not in KINDS or value is None:
            raise ConfigError(f"{where} {text}: expected inf:D (each shift <= D steps), l1:N (total shift <= N "
                              f"steps) or l0:N (at most N spikes moved), e.g. inf:2")
        if value < 1:
            raise ConfigError(f"{where} {text}: the budget must be an integer >= 1, got {value}")
        return cls(kind, value)

    def check_steps(self, steps: int, where: str = "--retime-budget") -> None:
        """ConfigError when a B_inf shift D is not below the input's ``steps`` time steps."""
        if self.kind == "inf" and self.size >= steps:
            raise ConfigError(f"{where} {self}: D must be < the input's {steps} time steps")

    def __str__(self) -> str:
        return f"{self.kind}:{self.size}"


@dataclass(frozen=True)
class Spikes:
    """The spikes of one row: spike i sits in channel ``channel[i]`` at time ``time[i]`` (both (S,) int64)."""

    channel: np.ndarray
    time: np.ndarray
    channels: int
    steps: int

    @classmethod
    def of(cls, row: np.ndarray) -> "Spikes":
        """The spikes of ``row`` (*shape, T) uint8 binary, ordered by channel, then time."""
        flat = row.reshape(-1, row.shape[-1])
        channel, time = np.nonzero(flat)
        return cls(channel.astype(np.int64), time.astype(np.int64), flat.shape[0], flat.shape[1])

    def options(self, budget: RetimeBudget) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(S, K) target times, (S, K) bool valid and (S,) the option that stays (B_inf: the shifts
        -D..D, K = 2D + 1; B_1/B_0: the T target times, K = T)."""
        if budget.kind == "inf":
            targets = self.time[:, None] + np.arange(-budget.size, budget.size + 1)[None]
            stay = np.full(len(self.time), budget.size, np.int64)
        else:
            targets = np.broadcast_to(np.arange(self.steps), (len(self.time), self.steps)).copy()
            stay = self.time.copy()
        valid = (targets >= 0) & (targets < self.steps)
        return np.clip(targets, 0, self.steps - 1), valid, stay

    def dense(self, times: np.ndarray) -> np.ndarray:
        """(channels * T,) float32 input with spike i at ``times[i]``."""
        out = np.zeros(self.channels * self.steps, np.float32)
        out[self.channel * self.steps + times] = 1.0
        return out


def project(pi: np.ndarray, spikes: Spikes, targets: np.ndarray, valid: np.ndarray, stay: np.ndarray,
            budget: RetimeBudget) -> np.ndarray:
    """The hard schedule: (S,) new time of each spike, within ``budget``, one spike per slot.

    Each spike proposes its best non-staying option by ``pi`` (S, K), ties to the lower option,
    with the margin pi(proposal) - pi(stay). Under B_inf a spike moves only when the margin is
    positive; under B_1 and B_0 the budget is spent on the largest margins (the authors' scan by
    pi). Proposals are taken greedily by margin (descending), then shorter shift, then spike
    index; one is skipped when its target slot holds a spike (an
    unmoved one, or one already moved there) or its cost (B_1: |shift| steps; B_0: one spike)
    exceeds what is left. A spike that moves frees its old slot. Every spike keeps its channel, so
    every channel keeps its spike count.
    """
    times = spikes.time.copy()
    if not len(times):
        return times
    rows = np.arange(len(times))
    scores = np.where(valid, pi, -np.inf)
    scores[rows, stay] = -np.inf
    best = scores.argmax(1)
    gain = scores[rows, best]
    proposed = targets[rows, best]
    shift = np.abs(proposed - spikes.time)
    margin = gain - pi[rows, stay]
    wanted = np.flatnonzero((shift > 0) & ((margin > 0) if budget.kind == "inf" else np.isfinite(gain)))
    order = wanted[np.lexsort((wanted, shift[wanted], -margin[wanted]))]
    cost = {"inf": np.zeros_like(shift), "l1": shift, "l0": np.ones_like(shift)}[budget.kind]
    left = np.inf if budget.kind == "inf" else budget.size
    taken = np.zeros(spikes.channels * spikes.steps, bool)
    taken[spikes.channel * spikes.steps + spikes.time] = True
    for i in order:
        slot = spikes.channel[i] * spikes.steps + proposed[i]
        if taken[slot] or cost[i] > left:
            continue
        taken[spikes.channel[i] * spikes.steps + spikes.time[i]] = False
        taken[slot] = True
        times[i] = proposed[i]
        left -= cost[i]
    return times


def fooled(counts: np.ndarray, label: int) -> bool:
    """Another class than ``label`` wins alone in ``counts`` (1, classes)."""
    pred = predict(counts)[0]
    return bool(pred != label and pred >= 0)


def retime_row(net: SpikingNetwork, clean: np.ndarray, label: int, budget: RetimeBudget, iterations: int,
               generator: torch.Generator) -> tuple[np.ndarray, dict]:
    """Retime one row ``clean`` (*shape, T) uint8 under ``budget``; the example (clean when failed)
    and its counters: success, iterations, forward_passes, backward_passes, spikes_moved and
    total_shift (steps; 0 when failed)."""
    spikes = Spikes.of(clean)
    targets, valid, stay = spikes.options(budget)
    stats = {"success": False, "iterations": 0, "forward_passes": 0, "backward_passes": 0,
             "spikes_moved": 0, "total_shift": 0}
    if not len(spikes.time):
        return clean.copy(), stats
    phi = _start(budget, valid, stay, generator)
    valid_t = torch.from_numpy(valid)
    slots = torch.from_numpy(spikes.channel[:, None] * spikes.steps + targets).reshape(-1)
    cost = torch.from_numpy(np.abs(targets - spikes.time[:, None]).astype(np.float32))
    stay_t = torch.from_numpy(stay)
    shape = (1, *clean.shape)
    times = spikes.time
    for _ in range(iterations):
        stats["iterations"] += 1
        phi.requires_grad_(True)
        pi = F.softmax(phi.masked_fill(~valid_t, float("-inf")), dim=1)
        soft = torch.zeros(spikes.channels * spikes.steps).index_add(0, slots, (pi * valid_t).reshape(-1))
        times = project(pi.detach().numpy(), spikes, targets, valid, stay, budget)
        hard = torch.from_numpy(spikes.dense(times))
        counts = net((hard + soft - soft.detach()).view(shape)).sum(-1)
        stats["forward_passes"] += 1
        if fooled(counts.detach().numpy(), label):
            return _success(spikes, times, clean, stats)
        loss = F.cross_entropy(counts, torch.tensor([label])) - _penalties(soft, pi, cost, stay_t, budget)
        (grad,) = torch.autograd.grad(loss, phi)
        stats["backward_passes"] += 1
        with torch.no_grad():
            phi = (phi + torch.sign(grad) * valid_t).clamp(-PHI_BOUND, PHI_BOUND)
    pi = F.softmax(phi.detach().masked_fill(~valid_t, float("-inf")), dim=1)
    times = project(pi.numpy(), spikes, targets, valid, stay, budget)
    with torch.no_grad():
        counts = net(torch.from_numpy(spikes.dense(times)).view(shape)).sum(-1)
    stats["forward_passes"] += 1
    if fooled(counts.numpy(), label):
        return _success(spikes, times, clean, stats)
    return clean.copy(), stats


def _start(budget: RetimeBudget, valid: np.ndarray, stay: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """Initial phi (S, K): B_inf 4 on the shifts -1, 0, +1 (the authors'), B_1/B_0 1 on staying;
    plus the row's seeded Gaussian start of scale :data:`START_SCALE`."""
    phi = torch.zeros(valid.shape)
    if budget.kind == "inf":
        phi[:, budget.size - 1:budget.size + 2] = 4.0
    else:
        phi[torch.arange(len(stay)), torch.from_numpy(stay)] = 1.0
    return phi + START_SCALE * torch.randn(valid.shape, generator=generator)


def _penalties(soft: torch.Tensor, pi: torch.Tensor, cost: torch.Tensor, stay: torch.Tensor,
               budget: RetimeBudget) -> torch.Tensor:
    """Occupancy penalty (expected spikes per slot above 1) plus the B_1/B_0 budget penalty."""
    occupancy = OCCUPANCY_WEIGHT * (soft - 1.0).clamp_min(0.0).square().mean()
    if budget.kind == "inf":
        return occupancy
    spent = (pi * cost).sum() if budget.kind == "l1" else (1.0 - pi[torch.arange(len(stay)), stay]).sum()
    return occupancy + BUDGET_WEIGHT[budget.kind] * F.relu(spent - budget.size) / budget.size


def _success(spikes: Spikes, times: np.ndarray, clean: np.ndarray, stats: dict) -> tuple[np.ndarray, dict]:
    """The fooling example (uint8 like ``clean``) and the counters with its moves."""
    stats.update(success=True, spikes_moved=int((times != spikes.time).sum()),
                 total_shift=int(np.abs(times - spikes.time).sum()))
    return spikes.dense(times).astype(np.uint8).reshape(clean.shape), stats
