"""On-device replay: hardware profiles, the Lava (Loihi 2 simulation) backend, measurements.

- :func:`replay` (``backend``): ``replay(network_file, spikes, profile) -> DeviceOutput``;
- :func:`load_profile`, :class:`Profile` (``profiles``): ``hw_profiles/*.toml``;
- :func:`replay_run`, :func:`replay_file` (``runner``): the ``harness replay`` stage;
- :mod:`harness.device.measure`: agreement with SLAYER, on-device success and transfer;
- :func:`preload`: import Lava and netx once, ahead of the first replay (5-6 s).

Lava-specific pieces: :mod:`.netx_reader` (reading netx HDF5 files), :mod:`.lowering` (every
layer as a sparse matrix), :mod:`.lava_sim` (the Lava network, batched), :mod:`.watchdog`
(the supervised child process), :mod:`.lava_procs` (custom Lava processes), :mod:`.energy`
and :mod:`.noise` (activity/energy accounting and input non-idealities). See docs/device.md.

Example::

    from harness.device import replay
    out = replay("runs/digits/model/network.net", spikes, "loihi2-fixed")
    out.predictions, out.rasters.shape, out.energy_j.mean()
"""
from .backend import DeviceOutput, replay
from .lava_sim import preload
from .profiles import Profile, available_profiles, load_profile
from .runner import replay_file, replay_run, replay_summary

__all__ = ["DeviceOutput", "Profile", "available_profiles", "load_profile", "preload", "replay", "replay_file",
           "replay_run", "replay_summary"]
