"""Oracles: what score- and decision-based attacks query (:class:`harness.attacks.interface.Oracle`).

- ``device`` (:class:`DeviceOracle`): a warm device session on a hardware profile answers every
  query (the truth); the candidates of all rows attacked together go in one call, side by side
  in the session's lanes.
- ``twin`` (:class:`TwinOracle`): the network computed in torch with the device's arithmetic
  answers (fast): for an imported network its :class:`harness.netx_twin.NetxTwin`, for a trained
  one the SLAYER network's no-grad forward. It is allowed only where a proof says it gives the
  device's answers: an imported run's import proof (card ``twin_device``: every output raster
  identical on the proof's profile), a trained run's clean replay on the profile
  (``device/<profile>/clean.h5``) whose output rasters equal the offline network's on every row
  (checked here when the oracle opens). Without one, :func:`open_oracle` refuses with a line
  naming the command that makes it.

Both give the same counts for the same inputs where the proof holds, so an attack seeded the
same way makes the same queries and the same adversarial spikes with either
(tests/test_blackbox_attacks.py). Examples found through the twin are replayed on the device by
the replay stage (``harness replay --attack ID``), as every attack set is.
"""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..runs import Run
from .invariant import batch_invariant

#: The oracle names (``--oracle``).
ORACLES = ("twin", "device")
#: The profile an oracle answers for when ``--profile`` is not given.
DEFAULT_PROFILE = "loihi2-fixed"


class TwinOracle:
    """Output counts from the run's network in torch (proven to equal the device's; module docstring).

    Queries are cheap when repeated: the oracle answers from a copy of the network whose weight
    normalisation is folded into plain weights once (SLAYER otherwise recomputes ``g v / |v|``
    before every forward pass). A network of dense CUBA blocks (the trained MLPs) is answered by
    :class:`harness.attacks.cuba_forward.DenseCubaForward`: SLAYER's integer dynamics without
    SLAYER's per-step overhead, the same output spikes bit for bit, 10x faster on nmnist-mlp.
    Any other network (conv layers, an imported :class:`harness.netx_twin.NetxTwin`; ``path``
    says which and why) and any query that one does not compute exactly (non-binary spikes) runs
    SLAYER's forward inside :func:`harness.attacks.invariant.batch_invariant`, kept entered (its
    quantized weights computed once, not per call). None of this changes an output spike: the
    folded weight is the tensor the hook computes, and both forwards give the unchanged model's
    spikes.

    Args:
        net: the run's network (SpikingNetwork or NetxTwin), in eval mode; not modified.
        batch_size: samples per forward pass (answers do not depend on it).
    """

    kind = "twin"

    def __init__(self, net, batch_size: int = 128) -> None:
        from .cuba_forward import plan

        self.net, self.batch_size = _folded(net), batch_size
        self._fast, why = plan(self.net)
        #: "dense CUBA forward", or "SLAYER forward: <why the fast one does not apply>".
        self.path = "dense CUBA forward" if self._fast else f"SLAYER forward: {why}"
        self._stack = ExitStack()
        self._stack.enter_context(batch_invariant(self.net))

    def counts(self, spikes: np.ndarray) -> np.ndarray:
        """(N, K) int64 output spike counts of binary spikes (N, *shape, T)."""
        from ..train import output_counts

        if self._fast is not None:
            parts = [self._fast.counts(spikes[start:start + self.batch_size])
                     for start in range(0, len(spikes), self.batch_size)]
            if parts and all(part is not None for part in parts):
                return np.concatenate(parts)
        return output_counts(self.net, spikes, self.batch_size).astype(np.int64)

    def close(self) -> None:
        """Leave the invariant forward (same interface as :class:`DeviceOracle`)."""
        self._stack.close()


def _folded(net):
    """A copy of ``net`` whose weight-normalised modules hold their computed weight as a plain one."""
    import copy

    import torch
    from torch.nn.utils.weight_norm import WeightNorm

    net = copy.deepcopy(net)
    for module in net.modules():
        if any(isinstance(hook, WeightNorm) for hook in module._forward_pre_hooks.values()):
            torch.nn.utils.remove_weight_norm(module)
    return net


class DeviceOracle:
    """Output counts from one warm device session of the run's network on ``profile``.

    Args:
        network_file: the run's netx network.
        profile: a hardware profile name or path (lava-sim backend).
        lanes: samples side by side per window (default: chosen for ``expected_samples``).
        expected_samples: the most candidates one query call will hold (the rows attacked together).
        sample_mode: how samples meet the network (the run's: "fresh" for trained runs).
    """

    kind = "device"

    def __init__(self, network_file: str | Path, profile, *, lanes: int | None = None,
                 expected_samples: int | None = None, sample_mode: str = "fresh") -> None:
        from ..device import device_session

        self._stack = ExitStack()
        self.session = self._stack.enter_context(
            device_session(network_file, profile, lanes=lanes, expected_samples=expected_samples,
                           sample_mode=sample_mode))

    def counts(self, spikes: np.ndarray) -> np.ndarray:
        """(N, K) int64 output spike counts of binary spikes (N, *shape, T) on the device."""
        return self.session.output_counts(spikes)

    def close(self) -> None:
        """Stop the session (its processes and files)."""
        self._stack.close()


def open_oracle(run: Run, kind: str, profile: str | None = None, *, batch_size: int = 128,
                expected_samples: int | None = None, data_path=None):
    """The oracle ``kind`` ("twin" or "device") for ``run`` on ``profile`` (default loihi2-fixed).

    Raises:
        ConfigError: an unknown kind, or a twin oracle without a proof (the line says how to make one).
    """
    if kind not in ORACLES:
        raise ConfigError(f"--oracle {kind}: unknown oracle; available: {', '.join(ORACLES)}")
    profile = profile or DEFAULT_PROFILE
    if kind == "twin":
        check_twin_proof(run, profile, data_path)
        return TwinOracle(run.net, batch_size)
    return DeviceOracle(run.network_file, profile, expected_samples=expected_samples,
                        sample_mode=sample_mode(run))


def sample_mode(run: Run) -> str:
    """How the run's samples meet the network on the device: the import proof's mode, else "fresh"."""
    return run.card.get("twin_device", {}).get("sample_mode", "fresh") if run.imported else "fresh"


def check_twin_proof(run: Run, profile: str, data_path=None) -> None:
    """Pass when a proof says the run's torch network gives ``profile``'s answers; ConfigError otherwise."""
    from ..device.profiles import as_profile

    name = as_profile(profile).name
    if run.imported:
        proof = run.card.get("twin_device") or {}
        if proof.get("profile") != name or proof.get("raster_exact") != 1.0 or proof.get("agreement") != 1.0:
            raise ConfigError(f"--oracle twin: the import of {run.root} proves its twin on "
                              f"'{proof.get('profile', '?')}', not on '{name}'; use --oracle device --profile {name}")
        return
    clean = run.device(name, "clean")
    if not clean.exists():
        raise ConfigError(f"--oracle twin: no proof that {run.root}'s network gives the answers of '{name}'; make one "
                          f"with `harness replay --run {run.root} --profile {name} --clean` (every row raster-exact)")
    exact, rows = _clean_replay_exact(run, name, data_path)
    if not exact:
        raise ConfigError(f"--oracle twin: the clean replay of {run.root} on '{name}' is not raster-exact with the "
                          f"offline network on all {rows} rows, so the twin is not the device there; "
                          f"use --oracle device")


def _clean_replay_exact(run: Run, profile: str, data_path) -> tuple[bool, int]:
    """(every row of the clean replay equals the offline network's output raster, rows)."""
    replay = run.replay(profile, "clean").arrays
    device = replay["output_rasters"]
    test = run.test(None, data_path)
    if len(test) != len(device) or not np.array_equal(replay.get("labels", test.labels), test.labels):
        return False, len(device)
    return bool(not mismatched_rows(run.net, test.spikes, device).size), len(device)


def mismatched_rows(net, spikes: np.ndarray, device_rasters: np.ndarray) -> np.ndarray:
    """Rows (indices) where the device's output rasters (N, K, T) differ from ``net``'s on
    ``spikes`` (N, *shape, T): none is the twin oracle's proof on those rows (all, on a shape mismatch)."""
    from ..train import forward_batches

    offline = np.concatenate([layers[-1].numpy().astype(np.uint8) for layers in forward_batches(net, spikes)])
    if offline.shape != device_rasters.shape:
        return np.arange(len(spikes))
    return np.flatnonzero((offline != device_rasters).reshape(len(spikes), -1).any(axis=1))
