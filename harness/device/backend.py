"""The device interface: ``replay(network_file, spikes, profile) -> DeviceOutput``.

A backend executes a netx network on (a simulation of) neuromorphic hardware and reports
what came out and what it cost (:class:`~harness.device.output.DeviceOutput`). ``lava-sim``
(Lava's CPU simulation of Loihi, :mod:`harness.device.lava_sim`) is the one shipped; another
backend (e.g. Loihi 2 hardware through Intel's lava-loihi) is a function with the same
signature registered in :data:`harness.device.registry.BACKENDS`, and needs no change anywhere
else.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError
from .output import DeviceOutput
from .profiles import Profile, as_profile
from .registry import backend_for
from .session import FRESH, DeviceSession, check_sample_mode, check_spikes


def replay(network_file: str | Path, spikes: np.ndarray, profile: str | Path | Profile, *,
           sample_keys: np.ndarray | None = None, lanes: int | None = None,
           timeout: float | None = None, progress: bool = False, sample_mode: str = FRESH) -> DeviceOutput:
    """Replay binary ``spikes`` through the netx network on a hardware profile.

    Args:
        network_file: netx HDF5 network (``model/network.net``, or any lava-dl export).
        spikes: (N, C, T) or (N, C, H, W, T) binary spikes in SLAYER's layout.
        profile: a profile name in hw_profiles/, a path to a profile, or a Profile.
        sample_keys: (N,) ints that select each sample's random noise field (default: the
            row numbers); give a clean sample and its adversarial version the same key.
        lanes: samples side by side in one run (default: from network size and free memory).
        timeout: watchdog timeout in seconds (default: from the amount of work).
        progress: show a progress bar (time steps simulated).
        sample_mode: how samples meet the network: ``"fresh"`` (each as on a freshly loaded
            network with netx's defaults, what lava-dl's tests compare against) or
            ``"interval"`` (streamed through one network with netx's ``reset_interval = T``);
            docs/device.md, "Bias".
    Raises:
        DataError: spikes not binary or of a shape the network cannot take.
        DeviceError: the network cannot be replayed or the run failed (DeviceTimeout on timeout).
    """
    profile = as_profile(profile)
    check_sample_mode(sample_mode)
    spikes = check_spikes(spikes)
    if sample_keys is not None and np.shape(sample_keys) != (len(spikes),):
        raise DataError(f"sample_keys must be ({len(spikes)},), one per sample, got shape {np.shape(sample_keys)}")
    run = backend_for(profile)
    return run(network_file, spikes, profile, sample_keys=sample_keys, lanes=lanes, timeout=timeout, progress=progress,
               sample_mode=sample_mode)


@contextlib.contextmanager
def device_session(network_file: str | Path, profile: str | Path | Profile, *, lanes: int | None = None,
                   steps: int | None = None, timeout: float | None = None,
                   expected_samples: int | None = None, sample_mode: str = FRESH) -> Iterator[DeviceSession]:
    """``with device_session(net, profile) as dev: out = dev.replay(spikes)``: one compiled network
    replaying many spike sets (:class:`harness.device.session.DeviceSession`, same arguments;
    ``profile`` as for :func:`replay`), stopped when the block ends (also on an error or Ctrl-C)."""
    session = DeviceSession(network_file, as_profile(profile), lanes=lanes, steps=steps, timeout=timeout,
                            expected_samples=expected_samples, sample_mode=sample_mode)
    with session:
        yield session
