"""Where CO-RE looks for target types: the kernel's BTF, its modules' BTF, or a BTF file.

Candidate search follows libbpf's ``bpf_core_find_cands``: every type of the main (vmlinux) BTF whose
essential name equals the local type's essential name and whose kind is compatible, in id order;
only if vmlinux has none, the same search over each module's own types. Module BTFs are opened on
first need; one that cannot be read is skipped with a :class:`CoreTargetWarning`, as a missing
module would be. A user-given BTF file replaces vmlinux and disables the module search, as
libbpf's ``btf_custom_path`` does.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, Iterable, Optional, Sequence

from ..errors import BTFError
from .core_compat import kinds_compat
from .reader import BTF
from .types import Type, essential_name

__all__ = ["TargetSet", "CoreTargetWarning"]


class CoreTargetWarning(UserWarning):
    """A target BTF (a kernel module's) could not be read and was skipped."""


class TargetSet:
    """The BTFs CO-RE relocates against: a main BTF and, optionally, module BTFs searched after it.

    Args:
        main: the vmlinux BTF (or a replacement).
        modules: module BTFs (split on ``main``), or a callable returning them, called once on the
            first search that finds nothing in ``main``.
        name: how the main BTF is named in resolutions (``vmlinux`` or the file's path).
    """

    def __init__(self, main: BTF, modules: "Sequence[BTF] | Callable[[], Iterable[BTF]]" = (), *,
                 name: str = "vmlinux") -> None:
        self.main = main
        self.name = name
        self._modules: Optional[list[BTF]] = list(modules) if not callable(modules) else None
        self._load_modules = modules if callable(modules) else None
        self._cache: dict[tuple[str, int], list[Type]] = {}

    # -- constructors -----------------------------------------------------------------------------
    @classmethod
    def vmlinux(cls) -> "TargetSet":
        """The running kernel: ``BTF.vmlinux()``, then every module under ``/sys/kernel/btf`` on demand."""
        return cls(BTF.vmlinux(), _kernel_modules, name="vmlinux")

    @classmethod
    def from_file(cls, path: "str | os.PathLike[str]") -> "TargetSet":
        """A BTF file the user gives (raw BTF, an ELF with ``.BTF``, a BTFHub archive); no modules."""
        return cls(BTF.from_file(path), (), name=os.fspath(path))

    @classmethod
    def from_btf(cls, btf: BTF, modules: Sequence[BTF] = (), *, name: str = "vmlinux") -> "TargetSet":
        """Any BTF objects (tests, ``corebpf compat`` against another kernel's BTF)."""
        return cls(btf, modules, name=name)

    # -- search -----------------------------------------------------------------------------------
    @property
    def modules(self) -> list[BTF]:
        """The module BTFs (opened on first access)."""
        if self._modules is None:
            loader, self._load_modules = self._load_modules, None
            self._modules = list(loader()) if loader is not None else []
        return self._modules

    def btf_name(self, btf: BTF) -> str:
        """How a target BTF is named in messages (``vmlinux``, a module name, a file path)."""
        if btf is self.main:
            return self.name
        return btf.name or "module"

    def candidates(self, local: Type) -> list[Type]:
        """Target types a local type may relocate to, libbpf's order (empty if the local type is anonymous)."""
        name = essential_name(local.name)
        if not name:
            return []
        key = (name, int(local.kind))
        found = self._cache.get(key)
        if found is None:
            found = [t for t in self.main.find_all(name) if kinds_compat(t, local)]
            if not found:
                for mod in self.modules:
                    try:
                        hits = [t for t in mod.find_all(name) if t.id >= mod.start_id and kinds_compat(t, local)]
                    except BTFError as e:  # a module BTF broken past its header: as if it were absent
                        warnings.warn(f"skipping BTF of kernel module {mod.name!r}: {e}", CoreTargetWarning,
                                      stacklevel=2)
                        continue
                    found.extend(hits)
            self._cache[key] = found
        return list(found)

    def __repr__(self) -> str:
        mods = "not loaded" if self._modules is None else str(len(self._modules))
        return f"<TargetSet {self.name}: {self.main!r}, modules {mods}>"


def _kernel_modules() -> list[BTF]:
    """Every loaded module's BTF; unreadable ones are skipped with a warning."""
    out = []
    for name in BTF.module_names():
        try:
            out.append(BTF.module(name))
        except (BTFError, OSError) as e:
            warnings.warn(f"skipping BTF of kernel module {name!r}: {e}", CoreTargetWarning, stacklevel=3)
    return out
