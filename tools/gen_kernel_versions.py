#!/usr/bin/env python3
"""Generate ``src/corebpf/analysis/kernel_versions.json`` from bcc's ``kernel-versions.md``.

    python tools/gen_kernel_versions.py [../shared/reference/kernel-versions.md]

The markdown tables (program types, map types, helpers, main features) are parsed as they are; bcc's
table lacks several things ``corebpf inspect``/``compat`` need (attach types, ISA levels, BTF kinds,
kfunc support, newer map/program types and features), so ``EXTRA`` below adds them by hand, each
with the kernel commit or release that introduced it (``source``). Entries from the markdown carry
the commit link bcc gives; ``CORRECTIONS`` replaces the few entries where bcc's table was found wrong.
Re-run after updating the markdown; the output is deterministic.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MD = ROOT.parent / "shared" / "reference" / "kernel-versions.md"
OUT = ROOT / "src" / "corebpf" / "analysis" / "kernel_versions.json"

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)")
_COMMIT = re.compile(r"\[`([0-9a-f]+)`\]")

# What bcc's table does not list. Sources name the kernel commit's subject (or the release); commit ids
# are left out where they were not checked against a kernel tree.
EXTRA: dict[str, dict[str, dict[str, str]]] = {
    "prog_types": {
        "NETFILTER": {"version": "6.4", "source": "kernel commit: bpf: minimal support for programs hooked into netfilter framework"},
    },
    "helpers": {
        # bcc's table spells it bpf_skc_to_mctcp_sock (a typo)
        "bpf_skc_to_mptcp_sock": {"version": "5.19", "source": "kernel commit: bpf: Add bpf_skc_to_mptcp_sock_proto"},
    },
    "map_types": {
        "CGRP_STORAGE": {"version": "6.2", "source": "kernel commit: bpf: Implement cgroup storage available to non-cgroup-attached bpf progs"},
        # the UAPI's names for CGROUP_STORAGE / PERCPU_CGROUP_STORAGE since 6.2 (same values)
        "CGROUP_STORAGE_DEPRECATED": {"version": "4.19", "source": "kernel commit: BPF_MAP_TYPE_CGROUP_STORAGE"},
        "PERCPU_CGROUP_STORAGE_DEPRECATED": {"version": "4.20", "source": "kernel commit: BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE"},
        "ARENA": {"version": "6.9", "source": "kernel commit: bpf: Introduce bpf_arena"},
    },
    "attach_types": {
        # expected_attach_type values: when the kernel first accepted them
        "CGROUP_INET_INGRESS": {"version": "4.10", "source": "kernel commit: bpf: add new prog type for cgroup socket filtering"},
        "CGROUP_INET_EGRESS": {"version": "4.10", "source": "kernel release notes"},
        "CGROUP_INET_SOCK_CREATE": {"version": "4.10", "source": "kernel commit: bpf: Add new cgroup attach type to enable sock modifications"},
        "CGROUP_SOCK_OPS": {"version": "4.13", "source": "kernel release notes"},
        "SK_SKB_STREAM_PARSER": {"version": "4.14", "source": "kernel release notes"},
        "SK_SKB_STREAM_VERDICT": {"version": "4.14", "source": "kernel release notes"},
        "CGROUP_DEVICE": {"version": "4.15", "source": "kernel release notes"},
        "SK_MSG_VERDICT": {"version": "4.17", "source": "kernel release notes"},
        "CGROUP_INET4_BIND": {"version": "4.17", "source": "kernel release notes"},
        "CGROUP_INET6_BIND": {"version": "4.17", "source": "kernel release notes"},
        "CGROUP_INET4_CONNECT": {"version": "4.17", "source": "kernel release notes"},
        "CGROUP_INET6_CONNECT": {"version": "4.17", "source": "kernel release notes"},
        "CGROUP_INET4_POST_BIND": {"version": "4.17", "source": "kernel release notes"},
        "CGROUP_INET6_POST_BIND": {"version": "4.17", "source": "kernel release notes"},
        "CGROUP_UDP4_SENDMSG": {"version": "4.18", "source": "kernel release notes"},
        "CGROUP_UDP6_SENDMSG": {"version": "4.18", "source": "kernel release notes"},
        "LIRC_MODE2": {"version": "4.18", "source": "kernel release notes"},
        "FLOW_DISSECTOR": {"version": "4.20", "source": "kernel release notes"},
        "CGROUP_SYSCTL": {"version": "5.2", "source": "kernel release notes"},
        "CGROUP_UDP4_RECVMSG": {"version": "5.2", "source": "kernel release notes"},
        "CGROUP_UDP6_RECVMSG": {"version": "5.2", "source": "kernel release notes"},
        "CGROUP_GETSOCKOPT": {"version": "5.3", "source": "kernel release notes"},
        "CGROUP_SETSOCKOPT": {"version": "5.3", "source": "kernel release notes"},
        "TRACE_RAW_TP": {"version": "5.5", "source": "kernel commit: tp_btf: BTF-enabled raw tracepoints"},
        "TRACE_FENTRY": {"version": "5.5", "source": "kernel commit: bpf: Introduce BPF trampoline"},
        "TRACE_FEXIT": {"version": "5.5", "source": "kernel release notes"},
        "MODIFY_RETURN": {"version": "5.7", "source": "kernel commit: bpf: Introduce BPF_MODIFY_RETURN"},
        "LSM_MAC": {"version": "5.7", "source": "kernel release notes"},
        "TRACE_ITER": {"version": "5.8", "source": "kernel release notes"},
        "CGROUP_INET4_GETPEERNAME": {"version": "5.8", "source": "kernel release notes"},
        "CGROUP_INET6_GETPEERNAME": {"version": "5.8", "source": "kernel release notes"},
        "CGROUP_INET4_GETSOCKNAME": {"version": "5.8", "source": "kernel release notes"},
        "CGROUP_INET6_GETSOCKNAME": {"version": "5.8", "source": "kernel release notes"},
        "XDP_DEVMAP": {"version": "5.8", "source": "kernel release notes"},
        "CGROUP_INET_SOCK_RELEASE": {"version": "5.9", "source": "kernel release notes"},
        "XDP_CPUMAP": {"version": "5.9", "source": "kernel release notes"},
        "SK_LOOKUP": {"version": "5.9", "source": "kernel release notes"},
        "XDP": {"version": "5.9", "source": "kernel commit: bpf, xdp: Add bpf_link-based XDP attachment API"},
        "SK_SKB_VERDICT": {"version": "5.13", "source": "kernel release notes"},
        "SK_REUSEPORT_SELECT": {"version": "5.14", "source": "kernel release notes"},
        "SK_REUSEPORT_SELECT_OR_MIGRATE": {"version": "5.14", "source": "kernel release notes"},
        "PERF_EVENT": {"version": "5.15", "source": "kernel commit: bpf: Implement minimal BPF perf link"},
        "TRACE_KPROBE_MULTI": {"version": "5.18", "source": "kernel commit: bpf: Add multi kprobe link"},
        "LSM_CGROUP": {"version": "6.0", "source": "kernel commit: bpf: per-cgroup lsm flavor"},
        "STRUCT_OPS": {"version": "6.4", "source": "kernel commit: bpf: Create links for BPF struct_ops maps"},
        "NETFILTER": {"version": "6.4", "source": "kernel commit: bpf: add bpf_link support for BPF_NETFILTER programs"},
        "TCX_INGRESS": {"version": "6.6", "source": "kernel commit: bpf: Add fd-based tcx multi-prog infra with link support"},
        "TCX_EGRESS": {"version": "6.6", "source": "kernel release notes"},
        "TRACE_UPROBE_MULTI": {"version": "6.6", "source": "kernel commit: bpf: Add multi uprobe link"},
        "CGROUP_UNIX_CONNECT": {"version": "6.7", "source": "kernel commit: bpf: Implement cgroup sockaddr hooks for unix sockets"},
        "CGROUP_UNIX_SENDMSG": {"version": "6.7", "source": "kernel release notes"},
        "CGROUP_UNIX_RECVMSG": {"version": "6.7", "source": "kernel release notes"},
        "CGROUP_UNIX_GETPEERNAME": {"version": "6.7", "source": "kernel release notes"},
        "CGROUP_UNIX_GETSOCKNAME": {"version": "6.7", "source": "kernel release notes"},
        "NETKIT_PRIMARY": {"version": "6.7", "source": "kernel commit: netkit, bpf: Add bpf programmable net device"},
        "NETKIT_PEER": {"version": "6.7", "source": "kernel release notes"},
        "TRACE_KPROBE_SESSION": {"version": "6.10", "source": "kernel commit: bpf: Add support for kprobe session attach"},
        "TRACE_UPROBE_SESSION": {"version": "6.13", "source": "kernel commit: bpf: Add support for uprobe multi session attach"},
    },
    "isa": {
        "cpu_v2": {"version": "4.14", "source": "kernel commit: (bpf: add BPF_J{LT,LE,SLT,SLE} instructions); clang -mcpu=v2"},
        "alu32": {"version": "5.1", "source": "kernel commit: (bpf: verifier: 32-bit sub-register tracking); clang -mcpu=v3 / -mattr=+alu32"},
        "jmp32": {"version": "5.1", "source": "kernel commit: (bpf: verifier support JMP32); clang -mcpu=v3"},
        "atomic_add": {"version": "4.1", "source": "BPF_XADD exists since the eBPF ISA (kernel 3.18/4.1 JITs)"},
        "atomic_fetch": {"version": "5.12", "source": "kernel commit: (bpf: Add instructions for atomic_[cmp]xchg) and BPF_FETCH, 5.12"},
        "atomic_bitwise": {"version": "5.12", "source": "kernel commit: bpf: Add bitwise atomic instructions"},
        "cpu_v4": {"version": "6.6", "source": "kernel commits adding sign-extension loads, movsx, bswap, sdiv/smod and gotol (the cpu v4 ISA): 6.6; clang -mcpu=v4"},
        "load_acquire_store_release": {"version": "6.15", "source": "kernel commit: bpf: Introduce load-acquire and store-release instructions"},
        "may_goto": {"version": "6.9", "source": "kernel commit: bpf: Introduce may_goto instruction"},
        "addr_space_cast": {"version": "6.9", "source": "kernel commit: bpf: Recognize addr_space_cast instruction in the verifier"},
        "bpf2bpf_calls": {"version": "4.16", "source": "kernel commit: bcc: bpf2bpf function calls"},
        "callbacks": {"version": "5.13", "source": "kernel commit: bpf: Add bpf_for_each_map_elem() helper; BPF_PSEUDO_FUNC"},
    },
    "btf_kinds": {
        "INT": {"version": "4.18", "source": "kernel commit: bpf: btf: Introduce BPF Type Format"},
        "PTR": {"version": "4.18", "source": "kernel release notes"},
        "ARRAY": {"version": "4.18", "source": "kernel release notes"},
        "STRUCT": {"version": "4.18", "source": "kernel release notes"},
        "UNION": {"version": "4.18", "source": "kernel release notes"},
        "ENUM": {"version": "4.18", "source": "kernel release notes"},
        "FWD": {"version": "4.18", "source": "kernel release notes"},
        "TYPEDEF": {"version": "4.18", "source": "kernel release notes"},
        "VOLATILE": {"version": "4.18", "source": "kernel release notes"},
        "CONST": {"version": "4.18", "source": "kernel release notes"},
        "RESTRICT": {"version": "4.18", "source": "kernel release notes"},
        "FUNC": {"version": "5.0", "source": "kernel commit: bpf: btf: Add BTF_KIND_FUNC and BTF_KIND_FUNC_PROTO"},
        "FUNC_PROTO": {"version": "5.0", "source": "kernel release notes"},
        "VAR": {"version": "5.2", "source": "kernel commit: bpf: kernel side support for BTF Var and DataSec"},
        "DATASEC": {"version": "5.2", "source": "kernel release notes"},
        "FLOAT": {"version": "5.13", "source": "kernel commit: (bpf: Add BTF_KIND_FLOAT support)"},
        "DECL_TAG": {"version": "5.16", "source": "kernel commit: bpf: Support for new btf kind BTF_KIND_TAG"},
        "TYPE_TAG": {"version": "5.17", "source": "kernel commit: bpf: Support BTF_KIND_TYPE_TAG for btf_type_tag attributes"},
        "ENUM64": {"version": "6.0", "source": "kernel commit: bpf: Add btf enum64 support"},
    },
    "features": {
        "global_data": {"version": "5.2", "source": "kernel commit: (bpf: implement lookup-free direct value access for maps): .data/.rodata/.bss maps"},
        "map_freeze": {"version": "5.2", "source": "kernel commit: (bpf: add syscall side map freeze support): frozen .rodata"},
        "bounded_loops": {"version": "5.3", "source": "kernel release notes"},
        "kfunc_calls": {"version": "5.13", "source": "kernel commit: bpf: Support bpf program calling kernel function"},
        "kfunc_module_calls": {"version": "5.18", "source": "kernel commit: (bpf: Introduce BPF support for kernel module function calls; fd_array), 5.16-5.18"},
        "ksym_typed_vars": {"version": "5.10", "source": "kernel commit: bpf: Introduce pseudo_btf_id"},
        "ksym_module_vars": {"version": "5.18", "source": "kernel commit: bpf: Allow bpf prog to reference kernel module BTF via BTF ID"},
        "sleepable": {"version": "5.10", "source": "kernel release notes"},
        "sleepable_uprobe": {"version": "6.0", "source": "kernel 6.0: bpf: Support sleepable uprobe programs (Delyan Kratunov, 2022); checked: Debian 5.10 refuses uprobe.s, 6.1 loads it"},
        "bpf_cookie": {"version": "5.15", "source": "kernel commit: bpf: Allow to specify user-provided bpf_cookie for BPF perf links"},
        "bpf_token": {"version": "6.9", "source": "kernel commit: bpf: Introduce BPF token object"},
        "arena": {"version": "6.9", "source": "kernel commit: bpf: Introduce bpf_arena"},
        "core_type_matches": {"version": "0.0", "source": "CO-RE TYPE_MATCHES relocations are resolved by the loader (libbpf >= 1.0); no kernel requirement"},
        "kconfig_externs": {"version": "0.0", "source": "resolved by the loader from the kernel config (libbpf 0.0.7); needs global data maps (5.2)"},
        "tcx": {"version": "6.6", "source": "kernel commit: bpf: Add fd-based tcx multi-prog infra with link support"},
        "netkit": {"version": "6.7", "source": "kernel release notes"},
        "uprobe_multi": {"version": "6.6", "source": "kernel release notes"},
        "kprobe_multi": {"version": "5.18", "source": "kernel release notes"},
        "struct_ops_link": {"version": "6.4", "source": "kernel release notes"},
        # behaviours the kernel tests pin (checked in Debian 5.10/6.1/6.12 VMs: older kernels lack them)
        "prog_info_verified_insns": {"version": "5.16", "source": "kernel commit aba64c7da983 (bpf: Add verified_insns to bpf_prog_info and fdinfo), applied to bpf-next Oct 2021, in the 5.16 merge window; Debian 5.10 reports 0, 6.1 fills it"},
        "task_iter_params": {"version": "6.1", "source": "kernel commit f0d74c4da1f0 (bpf: Parameterize task iterators.), Kui-Feng Lee, bpf-next v6 Aug 2022 -> 6.1; Debian 5.10 answers E2BIG (unknown link_create fields)"},
        "sockmap_prog_query": {"version": "5.18", "source": "kernel commit 748cd5729ac7 (bpf: support BPF_PROG_QUERY for progs attached to sockmap), pushed to bpf-next 2022-01-21 after the 5.17 merge window; Debian 5.10 answers EINVAL"},
        "verifier_msg_cannot_use_helper": {"version": "6.10", "source": "kernel commit: bpf: improve error message for unsupported helper (Mykyta Yatsenko, lore 20240325152210.377548-1-yatsenko@meta.com; libbpf mirror b0624101), bpf-next Mar 2024 -> 6.10: \"unknown func\" became \"program of this type cannot use helper\"; Debian 6.1 says unknown func, 6.12 the new words"},
    },
    # kfuncs: the release that first exported each (kernel BTF is the real test: `compat` checks it)
    "kfuncs": {
        "bpf_rcu_read_lock": {"version": "6.2", "source": "kernel commit: bpf: Add kfunc bpf_rcu_read_lock/unlock()"},
        "bpf_rcu_read_unlock": {"version": "6.2", "source": "kernel release notes"},
        "bpf_task_acquire": {"version": "6.2", "source": "kernel commit: bpf: Add kfuncs for storing struct task_struct * as a kptr"},
        "bpf_task_release": {"version": "6.2", "source": "kernel release notes"},
        "bpf_task_from_pid": {"version": "6.2", "source": "kernel commit: bpf: Add bpf_task_from_pid() kfunc"},
        "bpf_cgroup_acquire": {"version": "6.2", "source": "kernel commit: bpf: Enable cgroups to be used as kptrs"},
        "bpf_cgroup_release": {"version": "6.2", "source": "kernel release notes"},
        "bpf_obj_new_impl": {"version": "6.2", "source": "kernel commit: bpf: Introduce bpf_obj_new"},
        "bpf_obj_drop_impl": {"version": "6.2", "source": "kernel commit: bpf: Introduce bpf_obj_drop"},
        "bpf_cast_to_kern_ctx": {"version": "6.2", "source": "kernel commit: bpf: Add a kfunc to type cast from bpf uapi ctx to kernel ctx"},
        "bpf_rdonly_cast": {"version": "6.2", "source": "kernel commit: bpf: Add a kfunc for generic type cast"},
        "bpf_cpumask_create": {"version": "6.3", "source": "kernel commit: bpf: Enable cpumasks to be queried and used as kptrs"},
        "bpf_dynptr_from_skb": {"version": "6.4", "source": "kernel commit: bpf: Add skb dynptrs"},
        "bpf_iter_num_new": {"version": "6.4", "source": "kernel commit: bpf: implement numbers iterator"},
        "bpf_map_sum_elem_count": {"version": "6.6", "source": "kernel commit: bpf: make it possible to access map elements count"},
        "bpf_get_file_xattr": {"version": "6.8", "source": "kernel commit: bpf: Add kfunc bpf_get_file_xattr"},
        "bpf_arena_alloc_pages": {"version": "6.9", "source": "kernel release notes"},
        "bpf_session_is_return": {"version": "6.10", "source": "kernel release notes"},
    },
}


# Where bcc's table is wrong (checked against the kernel's history): these replace the parsed entry.
CORRECTIONS: dict[str, dict[str, dict[str, str]]] = {
    "prog_types": {
        # bcc says 5.15; the commit is dated 2021-05-14 in bpf-next, after 5.13-rc1 (May 9): merged for 5.14
        "SYSCALL": {"version": "5.14", "source": "kernel commit 79a7f8bdb159 (bpf: Introduce bpf_sys_bpf() helper and program type), bpf-next 2021-05-14 -> 5.14 (bcc's table says 5.15)"},
    },
}


def _version(cell: str) -> str | None:
    m = _VERSION.match(cell)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _rows(lines: list[str], start: str) -> list[list[str]]:
    """The rows of the first table after the heading line ``start``."""
    try:
        i = next(n for n, line in enumerate(lines) if line.strip() == start)
    except StopIteration:
        raise SystemExit(f"heading {start!r} not found in the markdown")
    rows: list[list[str]] = []
    in_table = False
    for line in lines[i + 1:]:
        if line.startswith("#") and in_table:
            break
        if "|" not in line:
            if in_table and line.strip() == "":
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if all(set(c) <= set("-: ") for c in cells):
            in_table = True
            continue
        if in_table:
            rows.append(cells)
    return rows


def _source(cell: str) -> str:
    m = _COMMIT.search(cell)
    return f"bcc kernel-versions.md, kernel commit {m.group(1)}" if m else "bcc kernel-versions.md"


def parse(md: str) -> dict[str, dict[str, dict[str, str]]]:
    """The tables of ``kernel-versions.md`` as {table: {name: {"version", "source"[, ...]}}}."""
    lines = md.splitlines()
    out: dict[str, dict[str, dict[str, str]]] = {k: {} for k in ("prog_types", "map_types", "helpers", "features")}
    for cells in _rows(lines, "### Program types"):
        if len(cells) >= 4 and cells[3].startswith("BPF_PROG_TYPE_") and _version(cells[1]):
            out["prog_types"].setdefault(cells[3].removeprefix("BPF_PROG_TYPE_"),
                                         {"version": _version(cells[1]), "source": _source(cells[2])})
    for cells in _rows(lines, "### Map types"):
        if len(cells) >= 4 and cells[3].startswith("BPF_MAP_TYPE_") and _version(cells[1]):
            out["map_types"].setdefault(cells[3].removeprefix("BPF_MAP_TYPE_"),
                                        {"version": _version(cells[1]), "source": _source(cells[2])})
    for cells in _rows(lines, "## Helpers"):
        m = re.match(r"`BPF_FUNC_(\w+)\(\)`", cells[0]) if cells else None
        if m and len(cells) >= 2 and _version(cells[1]):
            entry = {"version": _version(cells[1]), "source": _source(" ".join(cells[3:]))}
            if len(cells) > 2 and cells[2]:
                entry["license"] = cells[2]
            out["helpers"].setdefault("bpf_" + m.group(1), entry)
    for cells in _rows(lines, "## Main features"):
        if len(cells) >= 2 and _version(cells[1]):
            name = re.sub(r"[*`_]", "", cells[0]).strip()
            out["features"].setdefault(name, {"version": _version(cells[1]), "source": _source(cells[2] if len(cells) > 2 else "")})
    return out


def generate(md: str) -> dict[str, object]:
    """The JSON document: parsed tables merged with ``EXTRA`` (the markdown wins where both list a name)."""
    data: dict[str, object] = {"_comment": "generated by tools/gen_kernel_versions.py from bcc's kernel-versions.md "
                                           "plus hand-curated entries with their sources; do not edit"}
    parsed = parse(md)
    for table in sorted(set(parsed) | set(EXTRA)):
        merged = dict(EXTRA.get(table, {}))
        merged.update(parsed.get(table, {}))
        merged.update(CORRECTIONS.get(table, {}))
        data[table] = {k: merged[k] for k in sorted(merged)}
    return data


def main(argv: list[str]) -> int:
    md_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_MD
    data = generate(md_path.read_text())
    OUT.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    counts = {k: len(v) for k, v in data.items() if isinstance(v, dict)}
    print(f"wrote {OUT.relative_to(ROOT)}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
