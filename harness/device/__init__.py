"""The device backend: hardware profiles and the Lava (Loihi 2 simulation) replay.

- :func:`replay` (``backend``): ``replay(network_file, spikes, profile) -> DeviceOutput``
  (``output``); backends are registered in :mod:`.registry`;
- :func:`load_profile`, :class:`Profile` (``profiles``): ``hw_profiles/*.toml``;
- :func:`device_session` (``backend``; :class:`DeviceSession` in ``session``):
  ``with device_session(net, profile) as dev: out = dev.replay(spikes)``, one compiled network
  replaying many sets (hardware in the loop);
- :func:`preload`: import Lava, netx and Lava's compiler once, ahead of the first replay (5-6 s).

Lava-specific pieces: :mod:`.netx_reader` (reading netx HDF5 files), :mod:`.lowering` (every
layer as a sparse matrix), :mod:`.lava_sim` (the Lava network, batched), :mod:`.watchdog`
(the supervised child process), :mod:`.lava_procs` (custom Lava processes), :mod:`.energy`
and :mod:`.noise` (activity/energy accounting and input non-idealities). See docs/device.md.
The backend imports nothing of runs or attacks; replaying a run's sets is the device stage,
:mod:`harness.stages`.

Example::

    from harness.device import load_profile, replay
    out = replay("runs/digits/model/network.net", spikes, load_profile("loihi2-fixed"))
    out.predictions, out.rasters.shape, out.energy_j.mean()
"""
from __future__ import annotations

import importlib

from .output import DeviceOutput
from .profiles import Profile, available_profiles, load_profile

__all__ = ["DeviceOutput", "DeviceSession", "Profile", "available_profiles", "device_session", "load_profile",
           "preload", "replay"]

#: Imported on first use (PEP 562): importing Lava takes seconds, and ``harness map`` or the
#: profiles need none of it.
_LAZY = {"replay": ".backend", "device_session": ".backend", "DeviceSession": ".session", "preload": ".lava_sim"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
