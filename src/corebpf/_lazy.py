"""Lazy package exports: a module-level ``__getattr__`` that imports a submodule on first use of a name.

``corebpf``, ``corebpf.btf``, ``corebpf.node`` and ``corebpf.inventory`` keep ``import`` cheap this way
(``corebpf doctor`` starts its probes before most of the package is loaded).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Collection, Mapping


def lazy_exports(package: str, namespace: dict[str, Any], exports: Mapping[str, str],
                 submodules: Collection[str] = ()) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``package``: a name in ``exports`` (name -> submodule, relative to
    ``package``) is imported from that submodule, a name in ``submodules`` is that submodule itself;
    either is then kept in ``namespace`` (the package's globals) so the next access is a plain lookup."""

    def __getattr__(name: str) -> Any:
        if name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            module = exports.get(name)
            if module is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
