"""``load_spec``: ObjectSpec -> live :class:`Object`, in libbpf's order, all-or-nothing.

Steps (libbpf's ``bpf_object_prepare``/``bpf_object_load``): resolve externs (kconfig, ksyms), CO-RE
relocation of every function, call relocation (append subprograms), finalise and load the object's
BTF (BTF kinds are probed and the BTF sanitised only when the kernel refuses it as is), create maps
(reusing pins, initial global data, freezing ``.rodata``/``.kconfig``, map-in-map initialisers), data
relocations, program loads with func/line info, prog array initialisers, and finally pinning new
``LIBBPF_PIN_BY_NAME`` maps.

The kernel-free steps (externs aside) run before anything is created, and every fd created is
tracked: if any step fails, all of them are closed (and pins made by this load removed) before the
error propagates, so a failed load leaves no fd and no kernel object behind.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

from .._sys._generated import MapType
from ..elf.linker import link_program
from .btf import load_object_btf
from .core import relocate_core, target_set
from .externs import kernel_version_code, resolve_externs
from .maps import CreatedMap, MapLoadError, create_map, fill_map_in_map
from .object import Object
from .programs import ProgramLoadError, check_loadable, load_linked
from .relocate import apply_data_relocations

if TYPE_CHECKING:  # pragma: no cover
    from ..elf.objectspec import ObjectSpec
    from ..programs.program import Program

__all__ = ["load_spec"]


def load_spec(spec: "ObjectSpec", btf: Any = None, pin_root: "str | os.PathLike[str] | None" = None, *,
              kconfig: Optional[dict[str, str]] = None, log_level: Optional[int] = None,
              programs: Optional[list[str]] = None) -> Object:
    """Load ``spec`` (see :func:`corebpf.load`). ``programs`` limits loading to those entry programs
    (default: every program whose ``autoload`` is set)."""
    names = [n for n, p in spec.programs.items() if p.autoload] if programs is None else list(programs)
    for n in names:
        if n not in spec.programs:
            raise ProgramLoadError(f"no program {n!r} in {spec.source}; programs: {', '.join(spec.programs)}")
        check_loadable(spec.programs[n])
    root = os.fspath(pin_root) if pin_root is not None else None

    # kernel-free preparation: CO-RE and linking create nothing
    targets = target_set(btf) if any(f.core_relos for f in (*spec.programs.values(), *spec.subprograms.values())) \
        else None
    code, resolutions = relocate_core(spec, names + list(spec.subprograms), btf, targets)
    linked = {n: link_program(spec, spec.programs[n], code) for n in names}

    # libbpf passes the running kernel's version unless the object has a "version" section
    kern_version = spec.kern_version or kernel_version_code()
    externs = None
    loaded_btf = None
    created: dict[str, CreatedMap] = {}
    progs: dict[str, "Program"] = {}
    pinned: list[str] = []
    try:
        externs = resolve_externs(spec, kconfig_extra=kconfig)
        loaded_btf = load_object_btf(spec)

        for name, mspec in spec.maps.items():
            if mspec.origin == "kconfig" and externs.kconfig is not None:
                mspec = mspec.copy()
                mspec.data = externs.kconfig
            created[name] = create_map(mspec, spec.name, loaded_btf, spec.btf, root)
        fill_map_in_map(created)
        fds = {n: c.map.fileno() for n, c in created.items()}

        for n in names:
            apply_data_relocations(spec, linked[n], fds, externs)
            progs[n] = load_linked(spec.programs[n], linked[n], spec.license, kern_version, loaded_btf,
                                   externs.fd_array, resolutions, log_level=log_level)

        for cm in created.values():
            if cm.spec.type != MapType.PROG_ARRAY or not cm.spec.contents or cm.reused:
                continue
            for index, target in cm.spec.contents:
                if target not in progs:
                    raise MapLoadError(f"prog array {cm.spec.name!r} slot {index}: program {target!r} was not loaded")
                cm.map[index] = progs[target].fileno()

        for cm in created.values():
            if cm.pin_path is None:
                continue
            if not cm.reused:
                os.makedirs(os.path.dirname(cm.pin_path), exist_ok=True)
                cm.map.pin(cm.pin_path)
            pinned.append(cm.pin_path)
    except BaseException:
        for p in progs.values():
            p.close()
        for cm in created.values():
            if cm.pin_path in pinned and not cm.reused:
                try:
                    os.unlink(cm.pin_path)
                except OSError:
                    pass
            cm.map.close()
        if loaded_btf is not None:
            loaded_btf.close()
        raise
    finally:
        if externs is not None:
            externs.close()  # module BTF fds: the kernel holds its own references now
    maps = {n: c.map for n, c in created.items()}
    return Object(spec, progs, maps, loaded_btf, resolutions, pinned)
