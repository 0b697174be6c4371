"""Training throughput (samples per second, forward + backward + optimiser step), for the record.

:func:`harness.train.train_network` on the model's whole train split for a fixed number of
epochs, from a fresh network (no resume file); data loading is not timed.
"""
from __future__ import annotations

import torch

from harness.models import load_spec
from harness.train import load_split, train_network

from .common import Row, interleaved
from .plan import SEED, Setup

NAME = "training"


def run(setup: Setup) -> list[Row]:
    """One row: samples per second over the plan's training epochs (median of the repeats)."""
    plan = setup.plan
    setup.require_data(plan.training_model)
    spec = load_spec(plan.training_model)
    train_set = load_split(spec, "train", setup.nmnist, SEED)

    def train():
        return train_network(spec, train_set, SEED, plan.training_epochs, progress=setup.progress)

    timing = interleaved({"train": train}, plan.repeats, plan.budget_s)["train"]
    samples = len(train_set) * plan.training_epochs
    info = {"model": spec.name, "train_samples": len(train_set), "epochs": plan.training_epochs,
            "batch_size": int(spec.training["batch_size"]), "torch_threads": torch.get_num_threads(),
            **timing.info()}
    return [Row(NAME, f"training {spec.name}, throughput", "samples/s", samples / timing.median, info=info)]
