"""The ANN twin of an SNN: the same layers with ReLU, on spike rates, and its training.

../shared/notes/attack-spec.md, "Influence factors": the twin has the SNN's layers (dense,
strided conv, flatten) with ReLU; its input is the spike rate over time, spikes.mean(-1), in
[0, 1]; it trains on the same data (rate-coded data is re-drawn every epoch, as the SNN's
training does). ``RUN_DIR/ann/model.pt`` keeps a trained twin with its identity (reused only
when made from the same spec, data, seed and epochs).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ...data.digits import rate_code
from ...models import ModelSpec
from ...runs import data_digest
from ...store import cached, identity, read_torch, write_bytes
from ...versions import numeric_versions


class RateANN(torch.nn.Module):
    """The SNN spec's layers as an ANN: (N, *input_shape) rates in [0, 1] -> (N, K) logits."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        layers: list[torch.nn.Module] = []
        shape = list(spec.input_shape)
        for layer in spec.layers:
            if layer["type"] == "flatten":
                layers.append(torch.nn.Flatten())
                shape = [int(np.prod(shape))]
                continue
            if layer["type"] == "dense":
                if len(shape) > 1:
                    layers.append(torch.nn.Flatten())
                layers.append(torch.nn.Linear(int(np.prod(shape)), int(layer["out"])))
                shape = [int(layer["out"])]
            else:
                k, s, p = int(layer["kernel"]), int(layer.get("stride", 1)), int(layer.get("padding", 0))
                layers.append(torch.nn.Conv2d(shape[0], int(layer["out"]), k, stride=s, padding=p))
                shape = [int(layer["out"])] + [(d + 2 * p - k) // s + 1 for d in shape[1:]]
            layers.append(torch.nn.ReLU())
        self.body = torch.nn.Sequential(*layers[:-1])  # no ReLU on the logits

    def forward(self, rates: torch.Tensor) -> torch.Tensor:
        return self.body(rates)


def spike_rates(spikes: np.ndarray) -> np.ndarray:
    """Spike rate over time (N, ...) float32 in [0, 1] of spikes (N, ..., T)."""
    return np.asarray(spikes, dtype=np.float32).mean(axis=-1)


def ann_predict(model: RateANN, rates: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Arg-max class (N,) int64 of the ANN on rates (N, *input_shape)."""
    rates = torch.as_tensor(rates, dtype=torch.float32)
    with torch.no_grad():
        return np.concatenate([model(rates[i:i + batch_size]).argmax(1).numpy()
                               for i in range(0, len(rates), batch_size)] or [np.zeros(0, np.int64)])


def train_ann(spec: ModelSpec, train_set, seed: int = 0, epochs: int | None = None, progress: bool = False) -> RateANN:
    """Train the ANN twin with cross-entropy and Adam (the spec's lr, batch size and epochs)."""
    torch.manual_seed(seed)
    model = RateANN(spec)
    opt = torch.optim.Adam(model.parameters(), lr=float(spec.training["lr"]))
    epochs = int(spec.training["epochs"] if epochs is None else epochs)
    batch = int(spec.training["batch_size"])
    labels = torch.as_tensor(train_set.labels)
    rates = torch.as_tensor(spike_rates(train_set.spikes))
    for epoch in tqdm(range(epochs), desc="train ANN", unit="epoch", disable=not progress):
        if train_set.rates is not None:  # rate-coded data: fresh draws every epoch, as the SNN sees
            rates = torch.as_tensor(spike_rates(rate_code(train_set.rates, spec.steps, seed * 100_003 + epoch)))
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(model(rates[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def load_or_train(path: Path, spec: ModelSpec, train_set, seed: int, epochs: int | None, progress: bool) -> RateANN:
    """The twin stored at ``path`` when made from this spec, training data, seed and epochs, else trained
    now and stored there (:func:`harness.store.cached`)."""
    ident = identity(stage="ann-model", spec=spec.to_dict(), seed=seed, epochs=epochs,
                     data_sha256=data_digest(train_set), versions=numeric_versions())

    def compute() -> None:
        model = train_ann(spec, train_set, seed, epochs, progress)
        buffer = io.BytesIO()
        torch.save({"identity": ident, "state_dict": model.state_dict()}, buffer)
        write_bytes(path, buffer.getvalue())

    cached(path, ident, compute)
    model = RateANN(spec)
    model.load_state_dict(read_torch(path, "ANN twin", f"delete {path} to retrain it")["state_dict"])
    return model.eval()
