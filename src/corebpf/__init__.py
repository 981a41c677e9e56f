"""corebpf: eBPF in production, from Python.

The public API lives here; submodules load on first use so ``import corebpf`` stays cheap.

    >>> import corebpf
    >>> with corebpf.Map.create("hash", key_size=4, value_size=8, max_entries=64) as m:
    ...     m[b"\\x01\\0\\0\\0"] = bytes(8)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

from .errors import (
    BPFError,
    BPFPermissionError,
    BTFError,
    CoreBPFError,
    ELFError,
    InstructionError,
    NodeError,
    VerifierError,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily by __getattr__)
_LAZY = {
    "Map": "corebpf.maps",
    "MapType": "corebpf.maps",
    "Program": "corebpf.programs",
    "ProgType": "corebpf.programs",
    "AttachType": "corebpf.programs",
    "TestRunResult": "corebpf.programs",
    "BTF": "corebpf.btf",
    "asm": "corebpf.asm",
    "inventory": "corebpf.inventory",
    "features": "corebpf.features",
    "node": "corebpf.node",
    "load": "corebpf.loader",
    "Object": "corebpf.loader",
    "ObjectSpec": "corebpf.elf",
    "RingBuffer": "corebpf.events",
    "PerfBuffer": "corebpf.events",
    "UserRingBuffer": "corebpf.events",
    "Poller": "corebpf.events",
    "links": "corebpf.links",
    "Link": "corebpf.links",
    "attach": "corebpf.links",
}


# subpackages exposed by name (``corebpf.inventory``...): the rest of _LAZY are names inside them
_SUBPACKAGES = frozenset(name for name, module in _LAZY.items() if module.rsplit(".", 1)[-1] == name)
__getattr__ = lazy_exports(__name__, globals(), {n: m.split(".", 1)[1] for n, m in _LAZY.items()}, _SUBPACKAGES)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from . import asm, features, inventory, links, node
    from .btf import BTF
    from .elf import ObjectSpec
    from .events import PerfBuffer, Poller, RingBuffer, UserRingBuffer
    from .links import Link, attach
    from .loader import Object, load
    from .maps import Map, MapType
    from .programs import AttachType, Program, ProgType, TestRunResult

__all__ = [
    "BPFError", "BPFPermissionError", "BTFError", "CoreBPFError", "ELFError", "InstructionError", "NodeError",
    "VerifierError", *_LAZY,
]
