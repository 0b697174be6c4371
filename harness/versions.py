"""Versions of the packages a result depends on (recorded in cards, configs and results)."""
from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("harness", "lava-nc", "lava-dl", "torch", "numpy", "h5py")


def package_versions() -> dict[str, str]:
    """{package: version} for the packages that determine results, plus Python."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


#: Packages whose version can change the numbers an artifact holds (part of reuse identities).
NUMERIC_PACKAGES = ("lava-nc", "lava-dl", "torch", "numpy")


def numeric_versions() -> dict[str, str]:
    """{package: version} of :data:`NUMERIC_PACKAGES`."""
    versions = package_versions()
    return {name: versions[name] for name in NUMERIC_PACKAGES}
