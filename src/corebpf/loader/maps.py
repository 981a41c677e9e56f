"""Create an object's maps the way libbpf does.

* kernel names: the spec name cut to 15 characters; global data maps get libbpf's internal names
  (``<object prefix>.rodata``, ``.rodata.custom`` as is);
* BTF key/value types when the object's BTF loaded and the map type accepts them (a creation that
  fails with BTF is retried without it, as libbpf does);
* map-in-map gets a temporary inner map as template; ring buffer sizes are rounded up to a power-of-two
  number of pages; perf event arrays default to one slot per possible CPU;
* ``pinning = LIBBPF_PIN_BY_NAME`` maps reuse ``<pin_root>/<name>`` when it is compatible (an
  incompatible pin is an error); new ones are pinned by the loader only after the whole load succeeded;
* global data maps get their initial contents and ``.rodata``/``.kconfig`` are frozen.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .._sys._generated import MapType
from ..errors import BPFError, CoreBPFError
from ..elf.specs import PIN_BY_NAME, MapSpec
from ..maps.types import PAGE_SIZE
from .typed_map import TypedMap

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from ..btf.builder import LoadedBTF

__all__ = ["MapLoadError", "CreatedMap", "create_map", "kernel_map_name", "fill_map_in_map"]

# map types whose creation takes no BTF key/value types (libbpf clears them for these)
_NO_BTF_TYPES = {MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE, MapType.ARRAY_OF_MAPS,
                 MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP,
                 MapType.SOCKMAP, MapType.SOCKHASH, MapType.QUEUE, MapType.STACK, MapType.ARENA}


class MapLoadError(CoreBPFError):
    """A map of the object could not be created, reused or initialised."""


@dataclass
class CreatedMap:
    """A map created (or reused from a pin) for one load."""

    spec: MapSpec
    map: TypedMap
    reused: bool = False
    pin_path: Optional[str] = None


def kernel_map_name(obj_name: str, spec: MapSpec) -> str:
    """The name libbpf gives the map in the kernel (15 characters at most)."""
    if not spec.is_data:
        return spec.name[:15]
    real = spec.name
    sfx = min(max(7, len(real)), 15)
    pfx = 0 if "." in real[1:] else min(15 - sfx, len(obj_name))
    name = obj_name[:pfx] + real[:sfx]
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)


def _ringbuf_size(size: int) -> int:
    pages = max(1, -(-size // PAGE_SIZE))
    p = 1
    while p < pages:
        p <<= 1
    return p * PAGE_SIZE


def _compatible(m: TypedMap, spec: MapSpec, max_entries: int) -> Optional[str]:
    for what, have, want in (("type", m.type, spec.type), ("key_size", m.key_size, spec.key_size),
                             ("value_size", m.value_size, spec.value_size),
                             ("max_entries", m.max_entries, max_entries), ("flags", m.flags, spec.flags)):
        if int(have) != int(want):
            return f"{what} {int(have)} != {int(want)}"
    return None


def _create(spec: MapSpec, kname: str, btf: Optional["LoadedBTF"], max_entries: int, inner: Any) -> TypedMap:
    mtype = spec.type
    use_btf = btf is not None and mtype not in _NO_BTF_TYPES and (spec.key_type_id or spec.value_type_id)
    kwargs: dict[str, Any] = dict(flags=spec.flags, name=kname, inner_map=inner,
                                  numa_node=spec.numa_node if spec.flags & 4 else None, map_extra=spec.map_extra)
    if use_btf:
        try:
            return TypedMap.create(mtype, spec.key_size, spec.value_size, max_entries, btf=btf,
                                   btf_key_type_id=spec.key_type_id, btf_value_type_id=spec.value_type_id, **kwargs)
        except BPFError:
            pass  # libbpf retries without BTF types; a real problem shows again below
    return TypedMap.create(mtype, spec.key_size, spec.value_size, max_entries, **kwargs)


def create_map(spec: MapSpec, obj_name: str, btf: Optional["LoadedBTF"], local_btf: Optional["BTF"],
               pin_root: Optional[str]) -> CreatedMap:
    """Create (or reuse) one map and, for global data, write its initial contents and freeze it."""
    if not isinstance(spec.type, MapType):
        raise MapLoadError(f"map {spec.name!r}: unknown map type {spec.type} (newer than this corebpf?)")
    max_entries = spec.max_entries
    if spec.type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        max_entries = _ringbuf_size(max_entries)
    kname = kernel_map_name(obj_name, spec)
    pin_path = None
    if spec.pinning == PIN_BY_NAME:
        if pin_root is None:
            pin_root = "/sys/fs/bpf"  # libbpf's default pin root
        pin_path = os.path.join(pin_root, spec.name)
        if os.path.exists(pin_path):
            try:
                reused = TypedMap.from_pin(pin_path)
            except (BPFError, ValueError) as exc:
                raise MapLoadError(f"map {spec.name!r}: cannot open the pinned map at {pin_path}: {exc}") from None
            why = _compatible(reused, spec, max_entries)
            if why is not None:
                reused.close()
                raise MapLoadError(f"map {spec.name!r}: the map pinned at {pin_path} is incompatible ({why}); "
                                   f"remove the pin or change the definition")
            _set_types(reused, spec, local_btf)
            return CreatedMap(spec, reused, reused=True, pin_path=pin_path)
    inner = None
    try:
        if spec.inner is not None:
            ispec = spec.inner
            if not isinstance(ispec.type, MapType):
                raise MapLoadError(f"map {spec.name!r}: unknown inner map type {ispec.type}")
            inner = _create(ispec, kernel_map_name(obj_name, ispec), btf, ispec.max_entries, None)
        elif spec.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
            raise MapLoadError(f"map {spec.name!r}: map-in-map needs an inner map definition (__array(values, ...))")
        try:
            m = _create(spec, kname, btf, max_entries, inner)
        except (BPFError, ValueError) as exc:
            raise MapLoadError(f"map {spec.name!r}: {exc}") from exc
    finally:
        if inner is not None:
            inner.close()  # only a template: the kernel copied what it needs
    try:
        _set_types(m, spec, local_btf)
        if spec.is_data and spec.data is not None:
            m._update_raw((0).to_bytes(4, "little"), bytes(spec.data))
            if spec.readonly:
                m.freeze()
    except BaseException:
        m.close()
        raise
    return CreatedMap(spec, m, pin_path=pin_path)


def _set_types(m: TypedMap, spec: MapSpec, local_btf: Optional["BTF"]) -> None:
    m.spec_name = spec.name
    if local_btf is None or spec.is_data:
        return
    try:
        if spec.key_type_id:
            m.key_type = local_btf[spec.key_type_id]
        if spec.value_type_id:
            m.value_type = local_btf[spec.value_type_id]
    except CoreBPFError as exc:
        warnings.warn(f"map {spec.name!r}: BTF types unusable ({exc}); keys and values stay bytes", stacklevel=2)


def fill_map_in_map(created: dict[str, CreatedMap]) -> None:
    """Store the inner maps of map-in-map static initialisers (``.values = { [i] = &inner }``)."""
    for cm in created.values():
        if cm.reused or not cm.spec.contents or cm.spec.type == MapType.PROG_ARRAY:
            continue
        for index, target in cm.spec.contents:
            inner = created.get(target)
            if inner is None:
                raise MapLoadError(f"map {cm.spec.name!r} slot {index}: inner map {target!r} was not created")
            try:
                cm.map[index] = inner.map.fileno()
            except (BPFError, ValueError, TypeError) as exc:
                raise MapLoadError(f"map {cm.spec.name!r} slot {index}: cannot store map {target!r}: {exc}") from exc
