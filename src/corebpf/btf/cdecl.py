"""Print one BTF type (or a declarator of it) as C, e.g. ``int (*)(void *)``, ``char comm[16]``.

C declarators read inside-out: a pointer wraps the declarator in ``*``, an array or a function
appends ``[n]``/``(params)``, and parentheses are needed when a pointer's target is an array or a
function. We build the declarator string while walking from the outermost type to the base type.
Named struct/union/enum types print as references; anonymous ones print as ``struct {...}``.
"""

from __future__ import annotations

from .types import (
    MAX_RESOLVE_DEPTH, Array, Composite, Const, Datasec, DeclTag, Enum, Float, Func, FuncProto, Fwd, Int,
    Kind, Pointer, Restrict, Type, Typedef, TypeTag, Union, Var, Void, Volatile,
)

__all__ = ["format_c"]


def _qualifier(t: Type) -> str:
    if isinstance(t, Const):
        return "const"
    if isinstance(t, Volatile):
        return "volatile"
    if isinstance(t, Restrict):
        return "restrict"
    if isinstance(t, TypeTag):
        return f'__attribute__((btf_type_tag("{t.name}")))'
    raise AssertionError(t)


def _base_name(t: Type) -> str:
    if isinstance(t, Void):
        return "void"
    if isinstance(t, (Int, Float, Typedef)):
        return t.name or f"<anon {t.kind.name.lower()}>"
    if isinstance(t, Composite):
        word = "union" if isinstance(t, Union) else "struct"
        return f"{word} {t.name}" if t.name else f"{word} {{...}}"
    if isinstance(t, Enum):
        return f"enum {t.name}" if t.name else "enum {...}"
    if isinstance(t, Fwd):
        return f"{'union' if t.is_union else 'struct'} {t.name}"
    return f"<{t.kind.name} {t.name}>" if t.name else f"<{t.kind.name}>"


def _join(base: str, declarator: str) -> str:
    if not declarator:
        return base
    if base.endswith("*"):
        return base + declarator
    return f"{base} {declarator}"


def _params(proto: FuncProto, depth: int) -> str:
    if not proto.params:
        return "(void)"
    out = []
    for p in proto.params:
        if p.type_id == 0 and not p.name:
            out.append("...")
        else:
            out.append(_decl(p.type, p.name, depth + 1))
    return "(" + ", ".join(out) + ")"


def _decl(t: Type, declarator: str, depth: int = 0) -> str:
    """Declaration of ``declarator`` with type ``t``."""
    for _ in range(MAX_RESOLVE_DEPTH):
        if depth > MAX_RESOLVE_DEPTH:
            break
        if isinstance(t, Pointer):
            declarator = "*" + declarator
            target = t.target
            # const/volatile after a pointer's star are printed by the qualifier branch; here only
            # arrays and functions need the parentheses
            inner = target
            while isinstance(inner, (Const, Volatile, Restrict, TypeTag)):
                inner = inner.type
            if isinstance(inner, (Array, FuncProto)):
                declarator = f"({declarator})"
            t = target
            continue
        if isinstance(t, (Const, Volatile, Restrict, TypeTag)):
            target = t.type
            if isinstance(target, Pointer) or (isinstance(target, (Const, Volatile, Restrict, TypeTag))
                                               and isinstance(target.skip_qualifiers(), Pointer)):
                declarator = f"{_qualifier(t)} {declarator}".rstrip() if declarator else _qualifier(t)
                t = target
                continue
            if isinstance(t, TypeTag):  # after the type, as libbpf's C dump places type tags
                return _decl(target, f"{_qualifier(t)} {declarator}".rstrip(), depth + 1)
            return f"{_qualifier(t)} {_decl(target, declarator, depth + 1)}"
        if isinstance(t, Array):
            declarator = f"{declarator}[{t.nelems}]"
            t = t.elem_type
            continue
        if isinstance(t, FuncProto):
            declarator = f"{declarator}{_params(t, depth)}"
            t = t.return_type
            continue
        if isinstance(t, Func):
            return _decl(t.type, declarator or t.name, depth + 1)
        if isinstance(t, Var):
            return _decl(t.type, declarator or t.name, depth + 1)
        if isinstance(t, Datasec):
            return f'SEC("{t.name}")'
        if isinstance(t, DeclTag):
            return f'__attribute__((btf_decl_tag("{t.name}")))'
        return _join(_base_name(t), declarator)
    return _join("<type loop>", declarator)


def format_c(t: Type, declarator: str = "") -> str:
    """C for type ``t`` declaring ``declarator`` (empty: just the type name, e.g. ``void *``)."""
    if t.kind == Kind.FUNC and not declarator:
        return _decl(t, t.name)
    return _decl(t, declarator)
