"""The one registry of device backends: a profile's ``[backend] kind`` -> its replay function.

A backend is ``replay(network_file, spikes, profile, *, sample_keys, lanes, timeout, progress,
sample_mode)
-> DeviceOutput`` (:func:`harness.device.backend.replay` documents the arguments). Loaders
import the backend only when a replay needs it (Lava's import costs seconds). Profiles are
validated against :func:`backend_kinds`, and :func:`backend_for` dispatches.
"""
from __future__ import annotations

from typing import Callable

from ..errors import ConfigError

Backend = Callable[..., "DeviceOutput"]  # noqa: F821 - harness.device.output.DeviceOutput


def _lava_sim() -> Backend:
    from .session import replay_lava_sim

    return replay_lava_sim


#: backend kind -> loader of its replay function
BACKENDS: dict[str, Callable[[], Backend]] = {"lava-sim": _lava_sim}


def backend_kinds() -> tuple[str, ...]:
    """The registered backend kinds, e.g. ("lava-sim",)."""
    return tuple(BACKENDS)


def backend_for(profile) -> Backend:
    """The replay function of ``profile.backend`` (a :class:`harness.device.profiles.Profile`)."""
    if profile.backend not in BACKENDS:
        raise ConfigError(f"profile '{profile.name}': backend '{profile.backend}' unknown; "
                          f"available: {', '.join(BACKENDS)}")
    return BACKENDS[profile.backend]()
