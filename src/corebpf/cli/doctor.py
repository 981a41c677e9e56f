"""``corebpf doctor``: is this node ready for eBPF, and what eBPF already runs here?

Human output (rich) by default: a verdict line, then Kernel, BTF, JIT, Security, Filesystems,
Environment, Program types, Map types, Attach methods, Helpers and "What runs here". ``--json``
prints the document described by ``doctor_schema.json`` (JSON Schema draft 2020-12). Exit code 0
when ready (with or without limitations), 1 when not ready.
"""

from __future__ import annotations

import gc
import json
import sys
from typing import Any

import click

from ..node.readiness import LIMITED, NOT_READY, READY, build_report

SCHEMA_FILE = "doctor_schema.json"


def schema() -> dict[str, Any]:
    """The JSON Schema of ``corebpf doctor --json`` (shipped in the package)."""
    from importlib import resources

    return json.loads(resources.files("corebpf.cli").joinpath(SCHEMA_FILE).read_text())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable report (see docs/doctor.md).")
@click.option("--helpers", "show_helpers", is_flag=True, help="List the helpers each program type may call.")
@click.option("--no-mount", is_flag=True, help="Do not mount securityfs/tracefs to read lockdown and tracepoints.")
@click.option("--no-probe", is_flag=True, help="Only host facts: skip the feature probes.")
@click.option("--no-inventory", is_flag=True, help="Skip the summary of loaded eBPF objects.")
@click.option("--cache", is_flag=True, help="Reuse probe results from this boot (~/.cache/corebpf).")
@click.option("--schema", "print_schema", is_flag=True, help="Print the JSON Schema of --json and exit.")
def doctor(as_json: bool, show_helpers: bool, no_mount: bool, no_probe: bool, no_inventory: bool, cache: bool,
           print_schema: bool) -> None:
    """Is this node ready for eBPF? Kernel, BTF, JIT, lockdown, capabilities, mounts, VM/container,
    what really loads and attaches here (probed, never guessed), and what eBPF already runs."""
    if print_schema:
        click.echo(json.dumps(schema(), indent=2))
        return
    # a short-lived command that allocates many small objects (imports, ~33 dataclasses, thousands of
    # probe results) and frees little: the cyclic GC only costs time here (~50 ms of a cold run)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        report = build_report(mount=not no_mount, probe=not no_probe, use_cache=cache, inventory=not no_inventory,
                              fork=True)
        if as_json:
            click.echo(json.dumps(report, indent=1, default=str))
        else:
            render(report, show_helpers=show_helpers)
    finally:
        if gc_was_enabled:
            gc.enable()
    sys.exit(1 if report["verdict"]["status"] == NOT_READY else 0)




# ---- human output ----------------------------------------------------------------------------------

_MARK = {True: "[green]✔[/]", False: "[red]✘[/]", None: "[yellow]?[/]"}
_VERDICT_STYLE = {READY: "bold green", LIMITED: "bold yellow", NOT_READY: "bold red"}


def _fact(f: dict[str, Any]) -> str:
    return str(f["value"]) if f.get("error") is None else f"[yellow]unknown[/] ({f['error']})"


def _kv_table(title: str, rows: list[tuple[str, str, str]]) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None, pad_edge=False)
    t.add_column(style="cyan", no_wrap=True)
    t.add_column()
    t.add_column(style="dim")
    for row in rows:
        t.add_row(*row)
    return t


def _probe_table(title: str, results: dict[str, dict[str, Any]], only_failures_detail: bool = True) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False)
    t.add_column("", no_wrap=True)
    t.add_column("name", style="cyan", no_wrap=True)
    t.add_column("errno", no_wrap=True)
    t.add_column("reason")
    for name, r in results.items():
        reason = r["reason"] if (not r["supported"] or not only_failures_detail) else ""
        t.add_row(_MARK[r["supported"]], name, r["errno_name"] or "", reason)
    return t


def _compact(title: str, results: dict[str, dict[str, Any]]) -> list[Any]:
    """Supported names on one wrapped line, failures one per line with the reason."""
    good = [n for n, r in results.items() if r["supported"]]
    bad = {n: r for n, r in results.items() if not r["supported"]}
    out: list[Any] = [f"[bold]{title}[/]: {len(good)} of {len(results)} work",
                      f"  [green]✔[/] {', '.join(good) or 'none'}"]
    for n, r in bad.items():
        out.append(f"  [red]✘[/] [cyan]{n}[/] {r['errno_name'] or ''}: {r['reason']}")
    return out


def render(report: dict[str, Any], show_helpers: bool = False) -> None:
    """Print the report for humans."""
    from rich.console import Console

    con = Console(highlight=False)
    v = report["verdict"]
    con.print(f"[{_VERDICT_STYLE[v['status']]}]{v['summary']}[/]")
    for f in v["findings"]:
        if f["severity"] == "info":
            continue
        colour = "red" if f["severity"] == "problem" else "yellow"
        con.print(f"  [{colour}]•[/] [bold]{f['title']}[/]: {f['meaning']}")
        if f["plan_b"]:
            con.print(f"    [green]plan B:[/] {f['plan_b']}")
    con.print()
    n = report["node"]
    k = n["kernel"]
    kc = n["kconfig"]
    rows = [("release", k["release"], k["source"]), ("version", k["version"], ""),
            ("config", kc["source"] or f"[yellow]unavailable[/] ({kc['error']})", f"{kc['count']} options")]
    opts = kc["bpf_options"]
    on = [o for o, v in opts.items() if v in ("y", "m")]
    off = [o for o, v in opts.items() if v == "n"]
    other = {o: v for o, v in opts.items() if v not in ("y", "m", "n", None)}
    if kc["source"]:
        rows.append(("CONFIG_ set", "[green]" + " ".join(on) + "[/]", ""))
        rows.append(("CONFIG_ not set", "[dim]" + " ".join(off) + "[/]", ""))
        rows.extend((f"CONFIG_{o}", v, "") for o, v in other.items())
    con.print(_kv_table("Kernel", rows))
    b = n["btf"]
    con.print(_kv_table("BTF", [
        ("vmlinux", f"{_MARK[b['vmlinux_present']]} {b['vmlinux_path']}" +
         (f" ({b['vmlinux_size'] / 1e6:.1f} MB)" if b["vmlinux_size"] else ""), b["error"] or ""),
        ("modules", f"{len(b['modules'])} module BTF(s)" + (f": {', '.join(b['modules'][:8])}" if b["modules"] else ""),
         b["source"])]))
    j = n["jit"]
    con.print(_kv_table("JIT", [("bpf_jit_enable", _fact(j["enable"]), j["summary"]),
                                ("bpf_jit_harden", _fact(j["harden"]), ""),
                                ("bpf_jit_kallsyms", _fact(j["kallsyms"]), ""),
                                ("bpf_jit_limit", _fact(j["limit"]), j["limit"]["source"])]))
    lk = n["lockdown"]
    caps = n["capabilities"]
    sec = [("lockdown", lk["mode"] or f"[yellow]unknown[/] ({lk['error']})", lk["meaning"] +
            (" (securityfs mounted by corebpf)" if lk["mounted_securityfs"] else "")),
           ("unprivileged_bpf_disabled", _fact(n["unprivileged_bpf_disabled"]), ""),
           ("perf_event_paranoid", _fact(n["perf_event_paranoid"]), "")]
    for cap, has in (caps["bpf"] or {}).items():
        sec.append((cap, _MARK[has], "effective" if has else "missing from the effective set"))
    bpf = report["bpf_syscall"]
    sec.append(("bpf()", _MARK[bpf["usable"]], bpf["reason"]))
    con.print(_kv_table("Security", sec))
    mrows = []
    for kind, st in n["mounts"].items():
        where = ", ".join(st["paths"]) if st["mounted"] else "not mounted"
        mrows.append((kind, f"{_MARK[st['mounted']]} {where}", st["reason"] +
                      (" [mounted by corebpf]" if st["mounted_by_corebpf"] else "")))
    tr = n["tracing"]
    mrows.append(("kprobe PMU", _MARK[tr["kprobe_pmu"]["error"] is None], tr["kprobe_pmu"]["error"] or ""))
    mrows.append(("uprobe PMU", _MARK[tr["uprobe_pmu"]["error"] is None], tr["uprobe_pmu"]["error"] or ""))
    mrows.append(("available_filter_functions", _MARK[tr["available_filter_functions"]], tr["tracefs"] or ""))
    con.print(_kv_table("Filesystems", mrows))
    sb = n["sandbox"]
    con.print(_kv_table("Environment", [("summary", sb["summary"], "")] +
                        [(e["kind"], e["name"], f"{e['detail']} ({e['source']})") for e in sb["evidence"]]))
    con.print()
    feats = report["features"]
    if feats is None:
        con.print("[yellow]Feature probes not run[/]" + (f": {report['features_error']}" if report["features_error"]
                                                        else ": bpf() is not usable" if not bpf["usable"] else ""))
    else:
        for line in _compact("Program types", feats["prog_types"]):
            con.print(line)
        tracing = feats["prog_variants"].get("tracing", {})
        if tracing:
            con.print("    tracing variants: " + ", ".join(f"{nm} {_MARK[r['supported']]}" +
                                                       ("" if r["supported"] else f" {r['errno_name']}")
                                                       for nm, r in tracing.items()))
        for line in _compact("Map types", feats["map_types"]):
            con.print(line)
        con.print()
        con.print(_probe_table("Attach methods", feats["attach"], only_failures_detail=False))
        con.print(_probe_table("Instruction set and verifier", feats["misc"], only_failures_detail=False))
        con.print()
        con.print("[bold]Helpers[/] (supported / unsupported per program type" +
                  ("" if show_helpers else "; --helpers lists them") + ")")
        cells = []
        for pt, h in feats["helpers"].items():
            if not h["probed"]:
                continue
            if show_helpers:
                con.print(f"  [cyan]{pt}[/] ({h['counts']['supported']}): " + ", ".join(h["supported"]))
            else:
                cells.append(f"[cyan]{pt}[/] {h['counts']['supported']}/{h['counts']['unsupported']}")
        for i in range(0, len(cells), 4):
            con.print("  " + "   ".join(cells[i:i + 4]))
        unprobed = [pt for pt, h in feats["helpers"].items() if not h["probed"]]
        if unprobed:
            con.print(f"  [dim]not probed (type does not load): {', '.join(unprobed)}[/]")
        skipped = next((h["skipped"] for h in feats["helpers"].values() if h["probed"]), [])
        if skipped:
            con.print(f"  [dim]not probed (side effects when loaded): {', '.join(skipped)}[/]")
        con.print(f"[dim]probed in {feats['duration']:.2f} s" +
                  (f" (from cache {feats['from_cache']})" if feats["from_cache"] else "") + "[/]")
    con.print()
    inv = report["inventory"]
    if inv is not None:
        con.print("[bold]What runs here[/]")
        if not inv["available"]:
            con.print(f"  [yellow]unavailable[/]: {inv['error']}")
        else:
            for kind in ("programs", "maps", "links"):
                by = inv[kind]["by_type"]
                con.print(f"  {kind}: {inv[kind]['total']}" +
                          (" (" + ", ".join(f"{t} {c}" for t, c in by.items()) + ")" if by else ""))
            con.print(f"  BTF objects: {inv['btfs']}")
            for o in inv["top_owners"]:
                con.print(f"  owner pid {o['pid']} ({o['comm']}, uid {o['uid']}): {o['programs']} programs, "
                          f"{o['maps']} maps, {o['links']} links")
    mounted = report["mounted_by_corebpf"]
    if mounted:
        con.print(f"[dim]corebpf mounted: {', '.join(f'{k} at {p}' for k, p in mounted.items())}[/]")
