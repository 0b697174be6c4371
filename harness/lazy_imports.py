"""Defer the parts of lava-dl that the harness never uses, so importing SLAYER costs less.

``lava.lib.dl.slayer`` imports its ``object_detection`` subpackage (YOLO helpers) at import
time, which imports torchvision and its model zoo: measured with ``python -X importtime``, about
28% of importing the library and preloading Lava. :func:`defer_object_detection` registers that
subpackage as a module whose code runs on the first access to an attribute it does not have yet
(its module attributes ``__file__``, ``__spec__``, ``__path__`` are set at once, so tools that
scan ``sys.modules``, such as ``inspect``, do not trigger it), so code that does use
``slayer.obd`` still works unchanged. (``importlib.util.LazyLoader`` loads on *any* attribute,
and torch's import, scanning modules with ``inspect``, then loads it mid-way into a cycle.)
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

DEFERRED = "lava.lib.dl.slayer.object_detection"


def defer_object_detection() -> None:
    """Register :data:`DEFERRED` as a lazy module; a no-op once SLAYER is imported or where
    lava-dl is missing (an import of SLAYER then reports that itself)."""
    if DEFERRED in sys.modules or "lava.lib.dl.slayer" in sys.modules:
        return
    try:
        dl = importlib.util.find_spec("lava.lib.dl")  # imports the namespace packages lava, lava.lib only
    except ImportError:
        return
    if dl is None or not dl.submodule_search_locations:
        return
    package = Path(next(iter(dl.submodule_search_locations))) / "slayer" / "object_detection"
    if not (package / "__init__.py").is_file():
        return
    spec = importlib.util.spec_from_file_location(DEFERRED, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = _Deferred(DEFERRED)
    module.__spec__, module.__loader__, module.__file__ = spec, spec.loader, spec.origin
    module.__path__, module.__package__ = spec.submodule_search_locations, DEFERRED
    sys.modules[DEFERRED] = module


class _Deferred(types.ModuleType):
    """A module whose code runs on the first access to a (non-dunder) attribute it lacks."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        self.__class__ = types.ModuleType  # from now on a plain module
        self.__spec__.loader.exec_module(self)
        return getattr(self, name)
