"""``Object``: a loaded BPF object -- its programs, maps and global variables, owned until closed."""

from __future__ import annotations

import mmap as _mmap
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from ..elf.specs import Variables
from ..errors import BPFError
from .._sys.closing import Closing

if TYPE_CHECKING:  # pragma: no cover
    from ..btf.builder import LoadedBTF
    from ..btf.core import Resolution
    from ..elf.objectspec import ObjectSpec
    from ..links.auto import AttachReport
    from ..links.link import Link
    from ..programs.program import Program
    from .typed_map import TypedMap

__all__ = ["Object"]


class Object(Closing):
    """A loaded object (use :func:`corebpf.load` or :meth:`ObjectSpec.load`).

    ``programs["name"]`` are :class:`corebpf.Program` (with ``.id``, ``.tag``, ``.fd``, ``.section``),
    ``maps["name"]`` are :class:`corebpf.Map` whose keys/values go through their BTF types when the
    object describes them (global data maps are ``.data``, ``.rodata``, ``.bss``, ``.kconfig``...),
    ``variables["name"]`` reads and writes global variables of the live object (``.data``/``.bss``;
    ``.rodata`` and ``.kconfig`` are frozen after load and read-only). Closing releases every fd; programs
    and maps stay in the kernel only while attached or pinned.
    """

    def __init__(self, spec: "ObjectSpec", programs: dict[str, "Program"], maps: dict[str, "TypedMap"],
                 btf: Optional["LoadedBTF"], resolutions: dict[str, list["Resolution"]],
                 pinned: list[str]) -> None:
        self.spec = spec
        self.name = spec.name
        self.programs = programs
        self.maps = maps
        self.btf = btf
        self.core_resolutions = resolutions
        """CO-RE results per function name (see :class:`corebpf.btf.core.Resolution`)."""
        self.pinned_maps = pinned
        """Pin paths of maps pinned (or reused) by name."""
        self._mmaps: dict[str, _mmap.mmap] = {}
        self._attached: list["AttachReport | Link"] = []
        self._closed = False

    # ---- attaching ---------------------------------------------------------------------------------

    def attach_all(self, targets: Optional[Mapping[str, Mapping[str, Any]]] = None, *, strict: bool = False,
                   skip_failures: bool = False) -> "AttachReport":
        """Attach every loaded program by its section name, choosing a working method per hook (plan B).

        ``targets`` gives per-program attach points that sections leave open (e.g.
        ``{"on_xdp": {"interface": "eth0"}}``); see :func:`corebpf.links.attach_all`. The links are
        detached when the returned report or this object is closed.
        """
        from ..links import attach_all

        self._check_open()
        report = attach_all(self, targets, strict=strict, skip_failures=skip_failures)
        self._attached.append(report)
        return report

    def attach(self, name: str, **targets: Any) -> "Link":
        """Attach one program by its section name (see :func:`corebpf.links.attach_program`)."""
        from ..links import attach_program

        self._check_open()
        link = attach_program(self.programs[name], self.spec.programs[name], maps=self.maps, **targets)
        self._attached.append(link)
        return link

    # ---- global variables ----------------------------------------------------------------------

    def _buffers(self, map_name: str) -> tuple[Callable[[int, int], bytes], Callable[[int, bytes], None]]:
        m = self.maps[map_name]
        spec = self.spec.maps[map_name]
        mm = self._mmaps.get(map_name)
        if mm is None and not self._closed:
            try:
                mm = m.mmap(writable=not spec.readonly)
                self._mmaps[map_name] = mm
            except (BPFError, TypeError, ValueError):
                mm = None  # not mmapable (e.g. an old kernel): fall back to element reads and writes

        def read(off: int, size: int) -> bytes:
            if mm is not None:
                return mm[off:off + size]
            buf = bytearray(m.value_size)
            m._lookup_raw((0).to_bytes(4, "little"), buf)
            return bytes(buf[off:off + size])

        def write(off: int, raw: bytes) -> None:
            if mm is not None:
                mm[off:off + len(raw)] = raw
                return
            buf = bytearray(m.value_size)
            key = (0).to_bytes(4, "little")
            m._lookup_raw(key, buf)
            buf[off:off + len(raw)] = raw
            m._update_raw(key, bytes(buf))

        return read, write

    @property
    def variables(self) -> Variables:
        """Global variables of the live object by name (values through their BTF types)."""
        self._check_open()
        return Variables(self.spec.variable_specs, self._buffers, live=True)

    # ---- lifetime ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the object is closed")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release every fd of the object (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for attached in reversed(self._attached):  # links first: they hold the programs
            attached.close()
        self._attached.clear()
        for mm in self._mmaps.values():
            try:
                mm.close()
            except (BufferError, ValueError):
                pass
        self._mmaps.clear()
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()
        if self.btf is not None:
            self.btf.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "loaded"
        return f"<Object {self.name!r} programs={list(self.programs)} maps={list(self.maps)} {state}>"

