"""Kernel modules of a package tree: which ``.ko`` files to load, in which order (from modules.dep).

The VM needs virtio PCI and 9p before it can mount the host's root; a kernel builds them in
(``modules.builtin``) or ships them as modules whose dependencies ``modules.dep`` lists. Modules come
uncompressed, or compressed with xz, zstd or gzip (Debian 6.12 uses xz); the initramfs gets them
decompressed so busybox ``insmod`` can load them whatever it was built with.
"""

from __future__ import annotations

import gzip
import lzma
from dataclasses import dataclass
from pathlib import Path

from .errors import KernelError
from .image import _zstd

__all__ = ["ModuleSet", "module_name", "parse_modules_dep", "load_order", "read_module", "BOOT_MODULES",
           "OPTIONAL_MODULES"]

#: What the guest must have to mount the host over 9p (virtio_pci first: the 9p device sits on it).
BOOT_MODULES: tuple[str, ...] = ("virtio_pci", "9pnet_virtio", "9p")
#: Loaded when present: a writable overlay over the read-only host root, and entropy (Python's
#: os.urandom blocks on 5.10 until the CRNG is ready).
OPTIONAL_MODULES: tuple[str, ...] = ("overlay", "virtio_rng")

_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def module_name(path: str) -> str:
    """``kernel/fs/9p/9p.ko.xz`` -> ``9p``; dashes and underscores are the same to the kernel."""
    base = path.rsplit("/", 1)[-1]
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep -> {module path: [dependency paths]} (paths relative to the modules directory)."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        deps[mod.strip()] = rest.split()
    return deps


def load_order(wanted: list[str], deps: dict[str, list[str]]) -> list[str]:
    """Module paths to insmod for ``wanted`` (module paths), dependencies first, each once."""
    order: list[str] = []
    seen: set[str] = set()
    active: set[str] = set()

    def visit(mod: str) -> None:
        if mod in seen:
            return
        if mod in active:
            raise KernelError(f"modules.dep has a dependency cycle through {mod}")
        active.add(mod)
        # modules.dep lists the transitive closure with the deepest dependency last: visit it first.
        for dep in reversed(deps.get(mod, [])):
            visit(dep)
        active.discard(mod)
        seen.add(mod)
        order.append(mod)

    for mod in wanted:
        visit(mod)
    return order


def read_module(path: Path) -> bytes:
    """A module file's ELF bytes, decompressed."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KernelError(f"cannot read kernel module {path}: {e.strerror or e}") from e
    try:
        if path.name.endswith(".xz"):
            return lzma.decompress(data)
        if path.name.endswith(".gz"):
            return gzip.decompress(data)
        if path.name.endswith(".zst"):
            return _zstd(data)
    except (lzma.LZMAError, OSError, EOFError) as e:
        raise KernelError(f"kernel module {path} does not decompress: {e}") from e
    return data


@dataclass
class ModuleSet:
    """What a kernel needs to load for the VM: module paths in load order, and what is built in."""

    modules_dir: Path
    order: list[str]
    builtin: list[str]
    missing: list[str]  # optional modules this kernel has neither built in nor as a module

    @classmethod
    def for_kernel(cls, modules_dir: Path, required: tuple[str, ...] = BOOT_MODULES,
                   optional: tuple[str, ...] = OPTIONAL_MODULES) -> "ModuleSet":
        """The load order of ``required`` + ``optional`` modules of the kernel in ``modules_dir``.
        A required module that is neither built in nor a module raises :class:`KernelError`."""
        try:
            deps = parse_modules_dep((modules_dir / "modules.dep").read_text())
        except OSError as e:
            raise KernelError(f"{modules_dir}: no modules.dep ({e.strerror or e}); run depmod for this "
                              f"kernel") from e
        try:
            builtin_text = (modules_dir / "modules.builtin").read_text()
        except OSError:
            builtin_text = ""
        builtin_names = {module_name(line.strip()) for line in builtin_text.splitlines() if line.strip()}
        by_name = {module_name(p): p for p in deps}
        wanted, builtin, missing = [], [], []
        for name in (*required, *optional):
            key = name.replace("-", "_")
            if key in by_name:
                wanted.append(by_name[key])
            elif key in builtin_names:
                builtin.append(name)
            elif name in required:
                raise KernelError(f"kernel in {modules_dir} has no {name} (neither built in nor a module): "
                                  f"it cannot mount the host over 9p")
            else:
                missing.append(name)
        return cls(modules_dir, load_order(wanted, deps), builtin, missing)

    def files(self) -> list[tuple[str, bytes]]:
        """(``NN-name.ko``, decompressed bytes) for each module, numbered in load order."""
        return [(f"{i:02d}-{module_name(p)}.ko", read_module(self.modules_dir / p))
                for i, p in enumerate(self.order)]
