"""TOML specs (models/, hw_profiles/, experiments/): lookup by name and clear parse errors."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomli

from .errors import ConfigError

#: The repository root holding models/, hw_profiles/ and experiments/ (editable install).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    try:
        return tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None


def available(kind: str) -> list[str]:
    """Names of the specs shipped in ``PROJECT_ROOT/<kind>/`` (e.g. kind="models")."""
    return sorted(p.stem for p in (PROJECT_ROOT / kind).glob("*.toml"))


def resolve_spec(kind: str, name_or_path: str | Path) -> Path:
    """A spec file from a name in ``PROJECT_ROOT/<kind>/`` or an explicit path to a .toml file.

    ``kind`` is a folder below the project root (``models``, ``experiments/ensembles``); errors
    name a spec by the folder's last part, singular (``model``, ``ensemble``).

    A value ending in ``.toml`` or holding a path separator is a path; anything else a name.

    Raises:
        ConfigError: a path that does not exist ("file not found"), or an unknown name (the
            message lists the available ones).
    """
    candidate = Path(name_or_path)
    folder = Path(kind).name
    what = folder[:-1] if folder.endswith("s") else folder
    if candidate.suffix == ".toml" or os.sep in str(name_or_path) or "/" in str(name_or_path):
        if not candidate.is_file():
            raise ConfigError(f"{what} {candidate}: {'is a directory' if candidate.is_dir() else 'file not found'}")
        return candidate
    shipped = PROJECT_ROOT / kind / f"{name_or_path}.toml"
    if shipped.exists():
        return shipped
    names = ", ".join(available(kind)) or "(none)"
    raise ConfigError(f"unknown {what} '{name_or_path}'; available: {names}")


def require_keys(table: dict, keys: list[str], where: str) -> None:
    """Raise ConfigError naming ``where`` when any of ``keys`` is missing from ``table``."""
    missing = [k for k in keys if k not in table]
    if missing:
        raise ConfigError(f"{where}: missing required key(s): {', '.join(missing)}")


def check_unknown(table: dict, allowed: set[str], where: str) -> None:
    """Raise ConfigError on keys not in ``allowed`` (catches typos in spec files)."""
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
