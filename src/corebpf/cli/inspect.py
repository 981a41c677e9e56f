"""``corebpf inspect OBJ [--json]``: what a BPF object contains and needs, and how its CO-RE
relocations resolve on this kernel.

    corebpf inspect prog.bpf.o                 # tables for people
    corebpf inspect prog.bpf.o --json          # everything, for machines
    corebpf inspect prog.bpf.o --btf other.btf # resolve CO-RE against another kernel (or debian:6.1)
    corebpf inspect prog.bpf.o --no-core       # parse only, no kernel BTF needed

Exit codes: 0 inspected (even if a program would not load: that is ``corebpf compat``'s verdict);
1 the object or BTF is broken; 2 usage (a file that does not exist, bad options).

JSON shape (``--json``)::

    {
      "object":   {"name", "path", "license", "kern_version", "btf": bool,
                   "core_target": "vmlinux" | BTF path | null, "min_kernel": "5.8" | null},
      "programs": [{"name", "section", "type", "attach_type", "attach_to", "insns" (with subprograms),
                    "helpers": ["bpf_..."], "unknown_helpers": [id], "kfuncs": [...], "ksyms": [...],
                    "kconfig": [...], "maps": [...], "map_types": {map: type}, "subprograms": [...],
                    "isa": ["jmp32", "cpu_v4", "atomic_fetch", ...], "core_kinds": [...], "sleepable",
                    "min_kernel": "5.8" | null, "min_kernel_reason": "helper bpf_ringbuf_reserve (5.8)",
                    "requirements": [{"what", "name", "version", "source"}],
                    "optional": [same; dropped by the loader on kernels without them],
                    "core": {"ok": bool | null, "error": str | null,
                             "relocations": [Resolution.as_dict() + {"function", "status":
                                             "ok" | "guarded" (poisoned, unreachable) | "fails"}],
                             "unresolved": [...] (only when no target BTF)}}],
      "subprograms": [names],
      "maps":     [{"name", "type", "key_size", "value_size", "key_type", "value_type", "max_entries",
                    "flags", "pinning": "none" | "by_name", "origin", "section", "inner"?, "contents"?}],
      "globals":  [{"name", "section", "type", "offset", "size", "readonly", "value" (decoded via BTF)}],
      "externs":  [{"name", "kind": "kconfig" | "ksym" | "kfunc", "weak", "type",
                    "status": "ok" | "missing" | "weak-missing" | "unchecked", "where"}],
      "btf_kinds": [{"what": "btf_kinds", "name", "version", "source", "soft": true}]
    }
"""

from __future__ import annotations

from typing import Any, Optional

import click

from ._output import console, echo_json, fail, json_option, table

__all__ = ["inspect"]


def _version_cell(p: dict[str, Any]) -> str:
    if not p["min_kernel"]:
        return "?"
    return f"{p['min_kernel']} ({p['min_kernel_reason']})"


def _core_cell(p: dict[str, Any]) -> str:
    core = p["core"]
    if core["ok"] is None:
        n = len(core.get("unresolved", []))
        return f"{n} unresolved" if n else "-"
    rels = core["relocations"]
    if core["error"]:
        return f"error: {core['error']}"
    fails = [r for r in rels if r["status"] == "fails"]
    guarded = [r for r in rels if r["status"] == "guarded"]
    if fails:
        return f"FAILS: {', '.join(r['spec'] for r in fails)}"
    text = f"ok ({len(rels)})" if rels else "-"
    return text + (f", {len(guarded)} guarded" if guarded else "")


def _print(report: dict[str, Any]) -> None:
    o = report["object"]
    con = console()
    con.print(f"[bold]{o['name']}[/bold]  {o['path']}  license={o['license'] or '-'}  "
              f"BTF={'yes' if o['btf'] else 'no'}  CO-RE target={o['core_target'] or '-'}  "
              f"min kernel={o['min_kernel'] or '?'}")
    progs = report["programs"]
    table(progs, [("PROGRAM", "name"), ("SECTION", "section"), ("TYPE", "type"),
                  ("ATTACH", lambda p: p["attach_type"] or ""), ("TARGET", "attach_to"), ("INSNS", "insns"),
                  ("HELPERS", "helpers"), ("KFUNCS", "kfuncs"), ("MAPS", "maps"),
                  ("ISA", "isa"), ("MIN KERNEL", _version_cell), ("CO-RE HERE", _core_cell)], title="programs")
    if report["maps"]:
        table(report["maps"], [("MAP", "name"), ("TYPE", "type"),
                               ("KEY", lambda m: m["key_type"] or f"{m['key_size']} bytes"),
                               ("VALUE", lambda m: m["value_type"] or f"{m['value_size']} bytes"),
                               ("MAX", "max_entries"), ("FLAGS", lambda m: f"{m['flags']:#x}"),
                               ("PIN", "pinning"),
                               ("INNER", lambda m: m["inner"]["type"] if m.get("inner") else "")], title="maps")
    if report["globals"]:
        table(report["globals"], [("GLOBAL", "name"), ("SECTION", "section"), ("TYPE", "type"), ("SIZE", "size"),
                                  ("VALUE", lambda g: str(g["value"]))], title="globals")
    if report["externs"]:
        table(report["externs"], [("EXTERN", "name"), ("KIND", "kind"), ("WEAK", "weak"), ("TYPE", "type"),
                                  ("HERE", lambda e: f"{e['status']} {e['where']}".strip())], title="externs")
    relos = [dict(r, program=p["name"]) for p in progs for r in p["core"].get("relocations", [])]
    if relos:
        def outcome(r: dict[str, Any]) -> str:
            if r["poisoned"]:
                return f"{r['status']}: {r['reason']}"
            if r["target"] is None:
                return f"not found -> {r['new_val']}"
            return f"{r['orig_val']} -> {r['new_val']}"

        table(relos, [("PROGRAM", "program"), ("FUNCTION", "function"), ("INSN", "insn"), ("KIND", "kind"),
                      ("SPEC", "spec"), ("TARGET", lambda r: r["target"] or ""), ("RESULT", outcome)],
              title="CO-RE relocations")
    soft = ", ".join(f"{k['name']} ({k['version']})" for k in report["btf_kinds"])
    if soft:
        con.print(f"BTF kinds: {soft} (the loader rewrites kinds an older kernel lacks)")


@click.command("inspect", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("obj", type=click.Path(exists=True, dir_okay=False))
@click.option("--btf", "btf_path", metavar="PATH",
              help="Resolve CO-RE against this kernel instead of the running one: a BTF file, vmlinux image "
                   "or debian:VERSION.")
@click.option("--no-core", is_flag=True, help="Do not resolve CO-RE relocations or externs.")
@json_option
def inspect(obj: str, btf_path: Optional[str], no_core: bool, as_json: bool) -> None:
    """Programs, maps, globals, externs, CO-RE relocations and minimum kernel of OBJ."""
    from ..analysis.inspect import inspect_object
    from ..errors import CoreBPFError

    targets: Any = "host"
    if no_core:
        targets = None
    elif btf_path:
        from ..analysis.targets import TargetError, find_targets
        from ..btf.core import TargetSet

        try:
            kernel = find_targets([btf_path])
        except TargetError as e:
            fail(str(e), 2)
        if len(kernel) != 1:
            fail(f"{btf_path}: names {len(kernel)} kernels; inspect takes one (use corebpf compat for many)", 2)
        try:
            targets = "host" if kernel[0].host else TargetSet.from_btf(kernel[0].btf(), name=kernel[0].name)
        except CoreBPFError as e:
            fail(f"{btf_path}: {e}", 1)
    try:
        report = inspect_object(obj, targets)
    except CoreBPFError as e:
        fail(str(e), 1)
    if as_json:
        echo_json(report)
    else:
        _print(report)
