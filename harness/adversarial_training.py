"""Adversarial training: every batch mixes clean rows with rows attacked against the current weights.

``[training.adversarial]`` in a model spec (or ``harness train --adv-*``) turns it on
(docs/models.md, "Adversarial training"). For each training batch from epoch ``start_epoch`` on, the first
round(``share`` x B) rows of the (shuffled, augmented) batch are replaced by adversarial rows
crafted by :func:`perturb`: ``iterations`` steps of G2S on the count margin, RSF where a row's
gradient vanishes, the L0 budget ``max_flips`` enforced inside every update (the most useful
flips kept). The network is trained on the mixed batch with its ordinary loss.

Why this crafting step: it is the evaluation's own attack (G2S+RSF, margin objective,
../shared/notes/attack-spec.md) built from the same functions (:mod:`harness.attacks.g2s`,
:mod:`harness.attacks.rsf`), shortened to a few iterations and with the budget truncating
instead of stopping the row, so that every adversarial row uses its whole budget and the
network always trains on the strongest example found, successful or not (PGD-style
adversarial training, Madry et al. 2018, in the spike domain). A surrogate-gradient projected
step (top-B gradient flips) would be deterministic but is not the attack the model is judged by.

Layering: this module sits above ``train`` and ``attacks`` (docs/architecture.md, level 8);
``harness.train.train_run`` receives :func:`adversary_for` from its callers (the CLI, the
experiment tasks) because ``train`` may not import the attacks.

Determinism: row i of the training set in epoch e draws from its own generator seeded by
(seed x 100003 + e, i) (:mod:`harness.attacks.randomness`), so the adversarial rows depend only
on the weights, the seed, the epoch and the row, and an interrupted run resumed from its last
finished epoch ends with the weights of an uninterrupted one.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .attacks.g2s import apply_update, g2s_from_uniform, per_sample_peak, restrict_to_budget
from .attacks.randomness import row_generators, uniform
from .attacks.rsf import rsf_from_uniform, rsf_priority
from .models import ModelSpec, SpikingNetwork, make_loss
from .train import Adversary

#: RSF turnover rate where a row's gradient vanishes (the attack's reference gamma).
RSF_GAMMA = 0.05
#: Seeds of one epoch's crafting: seed x EPOCH_STRIDE + epoch (the stride of train.py's shuffling seeds).
EPOCH_STRIDE = 100_003


def perturb(net: SpikingNetwork, clean: torch.Tensor, labels: torch.Tensor, max_flips: int, iterations: int,
            generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Adversarial rows: ``iterations`` budget-truncated G2S steps ascending the count margin.

    Args:
        net: the network (its mode is the caller's; only input gradients are taken).
        clean: (N, *input_shape, T) binary spikes (float), on the network's device.
        labels: (N,) true classes.
        max_flips: L0 budget per row; flips beyond it are never made (the highest |g| kept).
        iterations: G2S steps.
        generators: one per row (:func:`harness.attacks.randomness.row_generators`).
    Returns:
        (N, *input_shape, T) binary spikes, each within ``max_flips`` flips of its clean row, no grad.
    """
    margin = make_loss(net.spec, "margin")
    x = clean.detach()
    for _ in range(iterations):
        x_in = x.clone().requires_grad_()
        with torch.enable_grad():  # also under a caller's no_grad
            (grad,) = torch.autograd.grad(margin(net(x_in), labels), x_in)
        u = uniform(generators, x.shape).to(x.device)
        magnitude = grad.abs()
        vanished = per_sample_peak(magnitude) == 0
        update = torch.where(vanished, rsf_from_uniform(x, u, RSF_GAMMA), g2s_from_uniform(grad, u, 1.0, magnitude))
        priority = torch.where(vanished, rsf_priority(u), magnitude)
        x = apply_update(x.clone(), restrict_to_budget(x, clean, update, max_flips, priority))
    return x.detach()


def adversary_for(spec: ModelSpec, seed: int) -> Adversary:
    """The batch adversary of ``spec``'s ``[training.adversarial]`` for a run seeded ``seed``.

    The returned function maps a batch (B, *input_shape, T) to the same batch with its first
    round(share x B) rows replaced by :func:`perturb`'s (crafted in eval mode, the training mode
    restored after); before ``start_epoch`` it returns the batch unchanged.
    """
    settings = spec.adversarial
    share, start = float(settings["share"]), int(settings["start_epoch"])
    max_flips, iterations = int(settings["max_flips"]), int(settings["iterations"])

    def adversary(net: SpikingNetwork, x: torch.Tensor, labels: torch.Tensor, index: torch.Tensor,
                  epoch: int) -> torch.Tensor:
        n = int(share * len(x) + 0.5)
        if epoch < start or n == 0:
            return x
        generators = row_generators(seed * EPOCH_STRIDE + epoch, index[:n].tolist())
        mode = net.training
        net.eval()
        try:
            crafted = perturb(net, x[:n], labels[:n], max_flips, iterations, generators)
        finally:
            net.train(mode)
        return torch.cat([crafted, x[n:]])

    return adversary
