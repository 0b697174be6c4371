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
from .backend import device_session, replay
from .lava_sim import preload
from .output import DeviceOutput
from .profiles import Profile, available_profiles, load_profile
from .session import DeviceSession

__all__ = ["DeviceOutput", "DeviceSession", "Profile", "available_profiles", "device_session", "load_profile",
           "preload", "replay"]
