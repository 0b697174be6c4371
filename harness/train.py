"""Train a SLAYER network, then write checkpoint, netx export and model card.

``train_run`` is what ``harness train`` calls. Training is resumable: after every epoch the
model and optimiser state are saved atomically (``model/train_state.pt``); an interrupted
run restarts from the last finished epoch and ends with the same weights as an
uninterrupted one, because each epoch's shuffling comes from a generator seeded by
(seed, epoch).

Adversarial training (``[training.adversarial]``, docs/models.md) needs the attacks, which sit
above this module (docs/architecture.md): the caller passes ``adversary_for``
(:func:`harness.adversarial_training.adversary_for`), which returns the :data:`Adversary` that
replaces a share of every batch's rows by adversarial ones.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import resolve_spec
from .data import SpikeSet, load_dataset
from .data.digits import rate_code
from .errors import ConfigError
from .metrics import accuracy, predict
from .models import (ModelSpec, SpikingNetwork, adversarial_settings, build_network, load_spec, make_loss, net_device,
                     torch_device)
from .runs import data_digest, open_run
from .store import RunDir, cached, check_writable, identity, read_torch, run_lock, write_bytes, write_json
from .versions import numeric_versions, package_versions


def forward_batches(net: SpikingNetwork, spikes: np.ndarray, batch_size: int = 256):
    """Yield, batch by batch and without gradients, every spiking layer's output spikes
    (a list of (B, ..., T) CPU tensors, the last one the output) for binary spikes (N, *input_shape, T),
    computed on the device ``net`` is on."""
    device = net_device(net)
    with torch.no_grad():
        for start in range(0, len(spikes), batch_size):
            x = torch.as_tensor(spikes[start:start + batch_size], dtype=torch.float32).to(device)
            yield [layer.cpu() for layer in net.forward_layers(x)]


def output_counts(net: SpikingNetwork, spikes: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Output spike counts (N, K) of ``net`` on binary spikes (N, *input_shape, T), no grad."""
    counts = [layers[-1].sum(-1).numpy() for layers in forward_batches(net, spikes, batch_size)]
    return np.concatenate(counts) if counts else np.zeros((0, net.spec.n_classes))


def evaluate(net: SpikingNetwork, data: SpikeSet) -> float:
    """Accuracy with the tie rule (a tie or silence is wrong)."""
    return accuracy(predict(output_counts(net, data.spikes)), data.labels)


def _optimizer(net: SpikingNetwork, spec: ModelSpec) -> torch.optim.Optimizer:
    name, lr = spec.training["optimizer"], float(spec.training["lr"])
    if name == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr)
    if name == "sgd":
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=float(spec.training.get("momentum", 0.9)))
    from .errors import ConfigError
    raise ConfigError(f"{spec.name}: optimizer '{name}' unknown; available: adam, sgd")


def epoch_lr(spec: ModelSpec, epoch: int, epochs: int) -> float:
    """Learning rate of ``epoch``: constant, or cosine-annealed towards 0 when the spec's
    ``lr_schedule = "cosine"`` (a function of the epoch alone, so resuming needs no state)."""
    lr = float(spec.training["lr"])
    if spec.training.get("lr_schedule", "constant") == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    return lr


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each sample's frames by a random (dy, dx) in [-max_shift, max_shift] pixels,
    filling with silence (event-camera augmentation, as lava-dl's N-MNIST tutorial does).

    Args:
        x: (N, C, H, W, T) spikes.
    """
    n, _, h, w, _ = x.shape
    padded = torch.nn.functional.pad(x, (0, 0, max_shift, max_shift, max_shift, max_shift))
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])


#: ``adversary(net, x, labels, index, epoch) -> x'``: a training batch (B, *input_shape, T) with some of
#: its rows replaced by adversarial ones crafted against ``net``'s current weights; ``index`` (B,) holds
#: the rows' positions in the training set and ``epoch`` the epoch (both seed the crafting's draws).
Adversary = Callable[[SpikingNetwork, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


def _save_torch(path: Path, obj) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def train_network(spec: ModelSpec, train_set: SpikeSet, seed: int, epochs: int,
                  state_path: Path | None = None, progress: bool = True, device: str = "cpu",
                  adversary: Adversary | None = None) -> SpikingNetwork:
    """Train with the spec's loss and optimiser; resume from ``state_path`` when it exists.

    Args:
        train_set: spikes (N, *input_shape, T).
        seed: initialises weights and every epoch's shuffling.
        epochs: number of passes over ``train_set``.
        state_path: per-epoch resume file (None: no resume).
        device: torch device trained on, "cpu" or "cuda" (CUDA's results are not the CPU's
            bits); the network is returned on the CPU either way.
        adversary: replaces rows of every batch (after augmentation) by adversarial ones
            (adversarial training); None: clean batches.
    """
    where = torch_device(device)
    net = build_network(spec, seed).to(where)
    opt = _optimizer(net, spec)
    loss_fn = make_loss(spec)
    start = 0
    if state_path is not None and state_path.exists():
        state = read_torch(state_path, "training state", f"delete {state_path} to train from the first epoch",
                           map_location=where)
        if isinstance(state, dict) and state.get("seed") == seed and state.get("spec") == spec.to_dict():
            net.load_state_dict(state["state_dict"])
            opt.load_state_dict(state["optimizer"])
            start = state["epoch"]
    x_all = torch.as_tensor(train_set.spikes, dtype=torch.float32)
    y_all = torch.as_tensor(train_set.labels)
    batch = int(spec.training["batch_size"])
    shift = int(spec.training.get("augment_shift", 0))
    with tqdm(desc=f"train {spec.name}", unit="sample", disable=not progress, initial=start * len(y_all),
              total=epochs * len(y_all)) as bar:
        for epoch in range(start, epochs):
            net.train()
            for group in opt.param_groups:
                group["lr"] = epoch_lr(spec, epoch, epochs)
            if train_set.rates is not None:  # rate-coded data: fresh Bernoulli draws every epoch
                x_all = torch.as_tensor(rate_code(train_set.rates, spec.steps, seed * 100_003 + epoch), dtype=torch.float32)
            order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
            total, correct = 0.0, 0
            shift_gen = torch.Generator().manual_seed(seed * 100_003 + epoch + 1)
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                x = x_all[idx]
                if shift and x.ndim == 5:
                    x = random_shift(x, shift, shift_gen)
                x = x.to(where)
                if adversary is not None:
                    x = adversary(net, x, y_all[idx].to(where), idx, epoch)
                out = net(x)
                loss = loss_fn(out, y_all[idx].to(where))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss)
                correct += int((torch.as_tensor(predict(out.sum(-1).detach().cpu().numpy())) == y_all[idx]).sum())
                bar.update(len(idx))
            bar.set_postfix(epoch=epoch + 1, loss=f"{total / len(order):.3f}", train_acc=f"{correct / len(order):.3f}")
            if state_path is not None:
                _save_torch(state_path, {"seed": seed, "spec": spec.to_dict(), "epoch": epoch + 1,
                                         "state_dict": net.state_dict(), "optimizer": opt.state_dict()})
    return net.cpu().eval()


def load_split(spec: ModelSpec, split: str, data_path=None, seed: int = 0, limit=None) -> SpikeSet:
    """The spec's data set, ``split`` ("train"/"test"), with the spec's T, dt and holdout."""
    return load_dataset(spec.dataset, split, spec.steps, spec.dt_ms, path=data_path, seed=seed, limit=limit,
                        holdout=spec.holdout)


def with_adversarial(spec: ModelSpec, flags: dict | None) -> ModelSpec:
    """``spec`` with the ``--adv-*`` flags' settings over its ``[training.adversarial]`` (unchanged without flags).

    Raises:
        ConfigError: a setting out of range, no flip budget, or a budget above the input size, naming the flag.
    """
    if not flags:
        return spec
    settings = adversarial_settings({**(spec.adversarial or {}), **flags}, spec.input_size,
                                    lambda key: "--adv-" + key.replace("_", "-"))
    return dataclasses.replace(spec, training={**spec.training, "adversarial": settings})


def _check_epochs(epochs, what: str) -> None:
    """ConfigError worded like the experiment file's refusal unless ``epochs`` is None or an int >= 1."""
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ConfigError(f"{what} must be an integer >= 1, got {epochs!r}")


def train_run(model: str, run_dir: str | Path, data_path=None, seed: int = 0, epochs: int | None = None,
              progress: bool = True, force: bool = False, device: str = "cpu", adversarial: dict | None = None,
              adversary_for: Callable[[ModelSpec, int], Adversary] | None = None) -> dict:
    """Train ``model`` (a models/ name or spec path) and write ``RUN_DIR/model/``.

    Writes (each atomically): checkpoint.pt (spec + weights, saved before the netx export,
    which removes weight_norm in place), network.net (netx HDF5) and, last, card.json, which
    stores the model's identity: the spec, seed, epochs, the train and test spikes and labels
    exactly as fed to the network, and the versions of the packages that change numbers. A model
    with the same identity is kept, not retrained (unless ``force``).

    Adversarial training: ``adversarial`` holds settings of the ``--adv-*`` flags (keys of
    ``[training.adversarial]``), which override the spec's; the resulting settings are part of the
    spec, hence of the identity, and the card records them under ``adversarial``.
    ``adversary_for(spec, seed)`` makes the batch adversary (the CLI and the experiment tasks pass
    :func:`harness.adversarial_training.adversary_for`); without it an adversarial spec is refused.

    Returns:
        The model card (dict).
    Raises:
        ConfigError: ``epochs`` below 1, a bad spec, bad adversarial settings or an unavailable ``device``; HarnessError: the run directory cannot
            be written; DataError: missing, malformed or empty data. All before any training.
    """
    _check_epochs(epochs, "--epochs")
    torch_device(device)
    spec_path = resolve_spec("models", model)
    spec = with_adversarial(load_spec(spec_path), adversarial)
    if spec.adversarial is not None and adversary_for is None:
        raise ConfigError(f"{spec_path} [training.adversarial]: adversarial training needs the attacks; train through "
                          "`harness train` or harness.adversarial_training.adversary_for")
    if epochs is None:
        epochs = spec.training["epochs"]
        _check_epochs(epochs, f"{spec_path} [training]: 'epochs'")
    run = RunDir(run_dir)
    check_writable(run.model_dir)
    if spec.dataset == "digits":
        data_path = None
    train_set = load_split(spec, "train", data_path, seed)
    test_set = load_split(spec, "test", data_path, seed)
    ident = identity(stage="train", spec=spec.to_dict(), seed=seed, epochs=epochs,
                     train_sha256=data_digest(train_set), test_sha256=data_digest(test_set),
                     versions=numeric_versions(), **({} if device == "cpu" else {"torch_device": device}))

    def compute() -> None:
        started = time.perf_counter()
        state_path = run.model_dir / "train_state.pt"
        adversary = None if spec.adversarial is None else adversary_for(spec, seed)
        net = train_network(spec, train_set, seed, epochs, state_path=state_path, progress=progress, device=device,
                            adversary=adversary)
        train_seconds = time.perf_counter() - started
        card = {
            "model": spec.name, "spec": spec.to_dict(), "seed": seed, "epochs": epochs,
            "dataset": {**test_set.metadata(), "path": None if data_path is None else str(Path(data_path).resolve()),
                        "n_train": len(train_set), "n_test": len(test_set)},
            "steps": spec.steps,
            "train_accuracy": evaluate(net, train_set), "test_accuracy": evaluate(net, test_set),
            "training_seconds": round(train_seconds, 2), "torch_device": device, "versions": package_versions(),
            **({} if spec.adversarial is None else {"adversarial": spec.adversarial}),
            "files": {"checkpoint": "checkpoint.pt", "network": "network.net"}, "identity": ident,
        }
        _save_torch(run.checkpoint, {"spec": spec.to_dict(), "state_dict": net.state_dict(), "seed": seed})
        copy.deepcopy(net).export_hdf5(run.network)  # atomic, built in memory (a full disk is one clear error)
        write_json(run.card_file, card)
        state_path.unlink(missing_ok=True)

    with run_lock(run.root, "harness train"):  # two trainings of one run directory: the second is refused
        cached(run.card_file, ident, compute, force=force, companions=(run.checkpoint, run.network))
    return open_run(run.root).card
