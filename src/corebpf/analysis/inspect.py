"""Everything about one BPF object, as plain data: what ``corebpf inspect`` prints.

:func:`inspect_object` parses the object (no kernel access for that part), works out what each
program needs (:mod:`.requirements`), and, unless told not to, resolves its CO-RE relocations and
externs against this kernel's BTF (or the BTF given), saying for each poisoned relocation whether the
verifier would reach it. The result is JSON-ready (see :mod:`corebpf.cli.inspect` for its shape).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

from .core_check import check_core, check_externs
from .requirements import analyze

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from ..btf.core import TargetSet
    from ..elf.objectspec import ObjectSpec
    from ..elf.specs import MapSpec

__all__ = ["inspect_object", "inspect_spec"]


def _type_text(btf: Optional["BTF"], type_id: int) -> Optional[str]:
    if btf is None or not type_id:
        return None
    try:
        return btf[type_id].format_c()
    except Exception:  # a type the C formatter cannot print is shown by id
        return f"[{type_id}]"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, bool) or value is None or isinstance(value, (float, str)):
        return value
    if isinstance(value, int):
        name = getattr(value, "name", None)  # EnumMember: keep the enumerator's name
        return name if isinstance(name, str) else int(value)
    return str(value)


def _map(spec: "ObjectSpec", m: "MapSpec") -> dict[str, Any]:
    t = m.type.name if hasattr(m.type, "name") else str(m.type)
    out: dict[str, Any] = {
        "name": m.name, "type": t, "key_size": m.key_size, "value_size": m.value_size,
        "key_type": _type_text(spec.btf, m.key_type_id), "value_type": _type_text(spec.btf, m.value_type_id),
        "max_entries": m.max_entries, "flags": m.flags, "pinning": "by_name" if m.pinning == 1 else "none",
        "origin": m.origin, "section": m.section,
    }
    if m.inner is not None:
        out["inner"] = _map(spec, m.inner)
    if m.contents:
        out["contents"] = [{"index": i, "name": n} for i, n in m.contents]
    return out


def _globals(spec: "ObjectSpec") -> list[dict[str, Any]]:
    out = []
    variables = spec.variables
    for name, v in spec.variable_specs.items():
        if v.section == ".kconfig":
            continue  # shown with the externs
        try:
            value = _jsonable(variables[name])
        except Exception as e:  # noqa: BLE001 - a value that does not decode is shown as an error
            value = f"<cannot decode: {e}>"
        out.append({"name": name, "section": v.section, "type": v.type.format_c() if v.type is not None else None,
                    "offset": v.offset, "size": v.size, "readonly": v.readonly, "value": value})
    return out


def _externs(spec: "ObjectSpec", targets: Optional["TargetSet"], host: bool) -> list[dict[str, Any]]:
    checks = {c.name: c for c in check_externs(spec, targets, host=host)} if spec.externs else {}
    out = []
    for name, e in spec.externs.items():
        c = checks.get(name)
        t = None
        if spec.btf is not None and e.type_id:
            try:
                t = spec.btf[e.type_id].type.format_c(name) if not e.is_func else f"{name}()"
            except Exception:  # noqa: BLE001
                t = None
        out.append({"name": name, "kind": c.kind if c else e.kind.value, "weak": e.weak, "type": t,
                    "status": c.status if c else "unchecked", "where": c.where if c else ""})
    return out


def inspect_spec(spec: "ObjectSpec", targets: "Optional[TargetSet] | str" = "host") -> dict[str, Any]:
    """The inspection of a parsed object. ``targets``: ``"host"`` (this kernel's BTF and config),
    a :class:`TargetSet`, or None (no CO-RE or extern resolution)."""
    host = targets == "host"
    target_error = None
    tset: Optional["TargetSet"] = None
    if host:
        from ..btf.core import TargetSet
        from ..errors import CoreBPFError

        try:
            tset = TargetSet.vmlinux()
            tset.main.kind_of(1)
        except (CoreBPFError, OSError) as e:
            target_error = f"no BTF for this kernel: {e}"
            tset = None
    elif targets is not None:
        tset = targets  # type: ignore[assignment]
    reqs = analyze(spec)
    core = check_core(spec, tset) if tset is not None else None

    programs = []
    for name, r in reqs.programs.items():
        p = r.as_dict()
        pc = core.programs.get(name) if core is not None else None
        if pc is not None:
            fatal = {id(res) for _, res in pc.fatal}
            p["core"] = {
                "ok": pc.ok, "error": pc.error,
                "relocations": [{"function": fn, **res.as_dict(),
                                 "status": ("ok" if not res.poisoned else "fails" if id(res) in fatal else "guarded")}
                                for fn, res in pc.resolutions],
            }
        else:
            p["core"] = {"ok": None, "error": target_error, "relocations": [], "unresolved": [
                {"function": f.name, "kind": rec.kind.name, "type_id": rec.type_id, "access": rec.access,
                 "insn": rec.insn_off // 8}
                for f in (spec.programs[name], *(spec.subprograms[s] for s in r.subprograms if s in spec.subprograms))
                for rec in f.core_relos]}
        programs.append(p)
    return {
        "object": {"name": spec.name, "path": spec.source, "license": spec.license,
                   "kern_version": spec.kern_version, "btf": spec.btf is not None,
                   "core_target": (tset.name if tset is not None else None),
                   "min_kernel": str(reqs.min_version) if reqs.min_version else None},
        "programs": programs,
        "subprograms": sorted(spec.subprograms),
        "maps": [_map(spec, m) for m in spec.maps.values()],
        "globals": _globals(spec),
        "externs": _externs(spec, tset, host),
        "btf_kinds": [dict(q.as_dict(), soft=True) for q in reqs.btf_kinds],
    }


def inspect_object(path: "str | os.PathLike[str]", targets: "Optional[TargetSet] | str" = "host") -> dict[str, Any]:
    """Parse ``path`` and inspect it (see :func:`inspect_spec`); raises ``ELFError``/``BTFError`` for bad input."""
    from ..elf.objectspec import ObjectSpec

    return inspect_spec(ObjectSpec.from_file(path), targets)
