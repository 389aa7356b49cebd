"""A compiled module's own Python source, loaded as a separate module object.

Tests that replace a module's internals (to count calls, shrink a cache) need its Python code:
within a mypyc-compiled module, calls go straight to the compiled functions and never see a
patched attribute. The twin runs the same source the compiled module was built from.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def pure_source(module: ModuleType) -> ModuleType:
    """A fresh module from `module`'s .py file (the module itself if it is not compiled)."""
    path = Path(module.__file__ or "")
    if path.suffix == ".py":
        return module
    source = path.with_name(path.name.split(".")[0] + ".py")
    spec = importlib.util.spec_from_file_location(module.__name__, source)
    assert spec is not None and spec.loader is not None, f"no source beside {path}"
    twin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(twin)
    return twin
