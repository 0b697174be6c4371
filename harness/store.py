"""The run directory: atomic, versioned reading and writing of every artifact.

Layout (the stable interface for scripts; see docs/architecture.md)::

    RUN_DIR/config.toml                  resolved experiment, seeds, package versions
    RUN_DIR/model/checkpoint.pt          torch state + model spec
    RUN_DIR/model/network.net            netx HDF5 export
    RUN_DIR/model/card.json              model card
    RUN_DIR/attacks/<id>.h5              clean + adversarial spikes and per-sample records
    RUN_DIR/device/<profile>/<id>.h5     replay outputs
    RUN_DIR/results.json, report.html, report.md, figures/*.png

Every file is written to a temporary name in the same directory and renamed into place, so
a killed run never leaves a half-written artifact that looks complete. HDF5 files carry a
``schema_version`` attribute; reading a newer version is refused with a clear error.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import h5py
import numpy as np

from .errors import DataError, HarnessError, SchemaError, StageMissing

SCHEMA_VERSION = 1


#: The errors of a write that failed for want of room, in the words of a refusal.
_NO_ROOM = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The parent directory is created. On any exception (KeyboardInterrupt included) the
    temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {_why_not_writable(path.parent, exc)}") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files: give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in _NO_ROOM:  # a write failed for want of room: the user's to fix
            raise HarnessError(f"cannot write {path}: {_NO_ROOM[exc.errno]}") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """An HDF5 file built in memory, written to ``path`` atomically (:func:`write_bytes`) when the block ends.

    HDF5 never writes to the disk itself: when its write fails (disk full) the library is left
    with a file it cannot flush or close, and the interpreter dies at exit with a segmentation
    fault (h5py 3, HDF5 1.12; ``harness train`` into a full filesystem). Here a full disk is one
    OSError of a plain write, and nothing is written when the block raises.
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        yield f
    write_bytes(path, buffer.getvalue())


def _file_in_the_way(directory: Path) -> Path | None:
    """The nearest of ``directory`` and its ancestors that exists but is not a directory, if any."""
    for candidate in (directory, *directory.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def _why_not_writable(directory: Path, exc: OSError) -> str:
    """What stops a file being created in ``directory``: a file standing where a directory
    is needed (mkdir only says "File exists" or "Not a directory"), else the OS's reason."""
    blocker = _file_in_the_way(directory)
    return _blocker_reason(blocker) if blocker is not None else exc.strerror or str(exc)


def _blocker_reason(blocker: Path) -> str:
    if not blocker.exists():
        return f"{blocker} is a broken symbolic link, not a directory"
    return f"{blocker} is a file, not a directory"


def check_writable(directory: str | os.PathLike) -> None:
    """Raise HarnessError ``cannot write <directory>: <why>`` unless files can be created in
    ``directory`` (existing or not). Creates nothing: it probes the nearest existing ancestor
    with a temporary file that is removed at once (root ignores permission bits, so only a
    real attempt tells)."""
    directory = Path(directory)
    blocker = _file_in_the_way(directory)
    if blocker is not None:
        raise HarnessError(f"cannot write {directory}: {_blocker_reason(blocker)}")
    existing = next(p for p in (directory, *directory.parents) if p.exists())
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".harness-write-check."):
            pass
    except OSError as exc:
        raise HarnessError(f"cannot write {directory}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_if_changed(path, data: bytes) -> bool:
    """Atomically write ``data`` to ``path`` unless the file already holds exactly ``data``.

    Re-running a finished stage then leaves the file's modification time untouched.

    Returns:
        True when the file was written.
    """
    path = Path(path)
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_bytes(path, data)
    return True


def write_text(path, text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # JSON has no NaN: an undefined rate is null
    return obj


def jsonable(obj: Any) -> Any:
    """A JSON-ready copy of ``obj``: numpy values and paths converted, NaN and inf -> None."""
    return _jsonable(obj)


def write_json(path, obj: Any, if_changed: bool = False) -> None:
    """Atomically write ``obj`` as indented JSON (numpy values converted, NaN -> null).

    ``if_changed``: leave the file (and its modification time) alone when it already holds
    exactly this JSON (see :func:`write_if_changed`).
    """
    data = (json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n").encode("utf-8")
    if if_changed:
        write_if_changed(path, data)
    else:
        write_bytes(path, data)


def read_json(path) -> Any:
    """Read a JSON file, with a clear error naming the file when missing or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def write_h5(path, arrays: dict[str, np.ndarray], attrs: dict[str, Any], kind: str) -> None:
    """Atomically write an HDF5 artifact.

    Args:
        path: destination file.
        arrays: dataset name -> array (names may contain '/' for groups).
        attrs: root attributes (scalars, strings; dicts and lists are stored as JSON strings).
        kind: artifact kind ("attack", "device", ...), stored as the ``kind`` attribute.
    """
    with atomic_h5(path) as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["kind"] = kind
        for key, value in attrs.items():
            f.attrs[key] = json.dumps(_jsonable(value)) if isinstance(value, (dict, list, tuple)) else value
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            opts = {"compression": "gzip", "compression_opts": 4} if arr.size > 4096 else {}
            f.create_dataset(name, data=arr, **opts)


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_h5(path, kind: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read every dataset and root attribute of an artifact written by :func:`write_h5`.

    Raises:
        StageMissing: the file does not exist.
        DataError: not an HDF5 file, or not the expected kind.
        SchemaError: written by a newer schema version than this harness reads.
    """
    path = Path(path)
    if not path.exists():
        raise StageMissing(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _decode_attr(v) for k, v in f.attrs.items()}
            check_schema(path, attrs, kind)
            arrays: dict[str, np.ndarray] = {}
            f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    return arrays, attrs


def check_schema(path, attrs: dict, kind: str | None) -> None:
    """Refuse artifacts without a schema version, of another kind, or from a newer schema."""
    version = attrs.get("schema_version")
    if version is None:
        raise DataError(f"{path}: no schema_version attribute; not an artifact written by harness")
    if int(version) > SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: written with schema_version {version}, but this harness reads up to "
            f"{SCHEMA_VERSION}; upgrade harness or re-create the run directory")
    if kind is not None and attrs.get("kind") != kind:
        raise DataError(f"{path}: expected a '{kind}' artifact, found kind={attrs.get('kind')!r}")


# ------------------------------------------------------------------ reuse: one mechanism
#: Name of the stored identity: a root attribute of HDF5 artifacts, a top-level key of JSON ones.
IDENTITY_KEY = "identity"


def digest_arrays(*arrays: np.ndarray) -> str:
    """sha256 (hex) of arrays exactly as given: shape, dtype and bytes of each, in order."""
    sha = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        sha.update(str((array.shape, array.dtype.str)).encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def digest_file(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def identity(**parts: Any) -> str:
    """The identity of an artifact: sha256 (hex) of everything it is made from.

    ``parts`` are JSON-able values (settings, digests of input spikes and of files, package
    versions); their canonical JSON (sorted keys) is hashed, so equal parts give equal identities
    whatever the order the caller names them in.
    """
    text = json.dumps(_jsonable(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_torch(path: str | os.PathLike, what: str, redo: str, map_location: Any = "cpu") -> Any:
    """The tensors and plain values (dicts, lists, numbers, strings) of a torch file; nothing else.

    The one place harness reads a torch file: ``torch.load(weights_only=True)``, so a file from a
    shared run directory cannot run code through pickle (a checkpoint whose pickle names a
    function or class, e.g. ``os.system``, is refused before anything is called).

    Args:
        what: what the file should be, for messages ("harness checkpoint").
        redo: what makes a good file again, appended to every refusal (e.g. "retrain with: ...").
    Raises:
        DataError: the file holds more than tensors and plain values (a pickled object: a
            malicious file, or one written by an older harness that stored numpy values), or is
            not a readable torch file at all; the message names the file.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = str(exc).rpartition("WeightsUnpickler error: ")[2]
        if found.startswith(("Unsupported class", "Unsupported global")):  # the pickle names a callable
            raise DataError(f"{path}: refused as a {what}: it holds more than tensors and plain values ({found}), "
                            f"so loading it could run code (or an older harness wrote it); {redo}") from None
        raise DataError(f"{path}: not a {what} (torch cannot load it: {found or str(exc).splitlines()[0]}); "
                        f"{redo}") from None
    except Exception as exc:  # noqa: BLE001 - torch raises whatever its reader meets: EOFError, RuntimeError, ...
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"{path}: not a {what} (torch cannot load it: {type(exc).__name__}: {first}); {redo}") from None


def stored_identity(path: str | os.PathLike) -> str | None:
    """The identity stored in an artifact (HDF5 attribute, JSON or torch-dict key); None when there is none.

    A missing, unreadable or foreign file has none (it is then recomputed); a file written by a
    newer schema raises :class:`SchemaError` (see :func:`check_schema`).
    """
    path = Path(path)
    if not path.is_file():
        return None
    if path.suffix in (".h5", ".hdf5"):
        try:
            with h5py.File(path, "r") as f:
                attrs = {k: _decode_attr(v) for k, v in f.attrs.items()}
        except OSError:
            return None
        try:
            check_schema(path, attrs, None)
        except DataError:
            return None
        value = attrs.get(IDENTITY_KEY)
    elif path.suffix == ".json":
        try:
            value = json.loads(path.read_text()).get(IDENTITY_KEY)
        except (OSError, ValueError, AttributeError):
            return None
    elif path.suffix == ".pt":  # a torch file holding a dict with an "identity" key
        try:
            state = read_torch(path, "torch file", "")
        except DataError:  # an unreadable or refused torch file is simply not reusable
            return None
        value = state.get(IDENTITY_KEY) if isinstance(state, dict) else None
    else:
        raise ValueError(f"{path}: no identity can be stored in a '{path.suffix}' file")
    return value if isinstance(value, str) else None


def cached(path: str | os.PathLike, ident: str, compute: Callable[[], Any], *, force: bool = False,
           companions: Iterable[str | os.PathLike] = ()) -> bool:
    """The one reuse rule of the harness: keep ``path`` if it was made from the same inputs.

    ``path`` is reused when it stores exactly ``ident`` (see :func:`identity`; computed by the
    caller from everything the artifact depends on) and every file in ``companions`` (written
    before ``path`` by the same computation) exists; otherwise ``compute()`` is called and must
    write ``path`` atomically with ``ident`` stored in it. Artifacts without an identity (older
    run directories) are recomputed, never trusted.

    Returns:
        True when ``compute`` ran, False when the artifact was reused.
    Raises:
        HarnessError: ``compute`` did not store ``ident`` in ``path`` (a bug in the caller).
    """
    path = Path(path)
    if not force and stored_identity(path) == ident and all(Path(p).exists() for p in companions):
        return False
    compute()
    if stored_identity(path) != ident:
        raise HarnessError(f"{path}: written without its identity; this is a bug in harness")
    return True


LOCK_NAME = ".harness.lock"


@contextlib.contextmanager
def run_lock(root: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold ``ROOT/.harness.lock`` while ``command`` ("harness train", ...) writes into ``root``.

    An exclusive ``fcntl.flock`` (released by the kernel however the process ends, SIGKILL
    included); the file names its holder and is removed on release. A second process that wants
    the same folder is refused at once rather than made to wait: its work would repeat the
    first one's (every stage would be recomputed twice, to identical results).

    Raises:
        HarnessError: another process holds the lock (the message names it and the folder); or
            ``root`` cannot be written.
    """
    import fcntl

    path = Path(root) / LOCK_NAME
    check_writable(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise HarnessError(f"{Path(root)} is in use by {holder} (lock {path}); wait until it finishes, "
                               f"then run this again") from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:  # not a file its last holder removed meanwhile
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({command})".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


class RunDir:
    """Paths of one run directory. Creating the object touches nothing on disk."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # model stage
    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def checkpoint(self) -> Path:
        return self.model_dir / "checkpoint.pt"

    @property
    def network(self) -> Path:
        return self.model_dir / "network.net"

    @property
    def card_file(self) -> Path:
        return self.model_dir / "card.json"

    # attack stage
    @property
    def attacks_dir(self) -> Path:
        return self.root / "attacks"

    def attack_path(self, attack_id: str) -> Path:
        return self.attacks_dir / f"{attack_id}.h5"

    def attack_ids(self) -> list[str]:
        return sorted(p.stem for p in self.attacks_dir.glob("*.h5")) if self.attacks_dir.is_dir() else []

    # device stage
    def device(self, profile: str, attack_id: str) -> Path:
        """Replay output of ``attack_id`` (or "clean") on hardware profile ``profile``."""
        return self.root / "device" / profile / f"{attack_id}.h5"

    # summary and report
    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    def require(self, path: Path, produced_by: str) -> Path:
        """Return ``path`` if it exists, else raise StageMissing naming the producing command."""
        if not path.exists():
            raise StageMissing(f"{path} does not exist; produce it first with: {produced_by}")
        return path
