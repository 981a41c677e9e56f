#!/usr/bin/env python3
"""Generate ``src/corebpf/_sys/_generated.py`` from a kernel's BTF.

The kernel's own BTF describes the UAPI exactly: ``union bpf_attr`` with every command's struct,
the info structs, ``perf_event_attr`` and the enums (commands, map/program/attach/link types,
helper ids). Generating ctypes classes from it means no offset is typed by hand, and a newer
kernel's fields arrive by re-running this script::

    python tools/gen_sys.py [--btf /sys/kernel/btf/vmlinux] [--out src/corebpf/_sys/_generated.py]

It reads the BTF through ``bpftool btf dump -j`` (a development-time tool only) and checks every
generated class against the BTF's sizes and member offsets before writing.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import subprocess
import sys
from pathlib import Path

# Anonymous structs inside union bpf_attr are named by their first member.
ATTR_NAMES_BY_FIRST_MEMBER = {
    "map_type": "MapCreateAttr",
    "map_fd": "MapElemAttr",
    "prog_type": "ProgLoadAttr",
    "pathname": "ObjPinAttr",
    "target_fd": "ProgAttachAttr",
    "start_id": "GetIdAttr",
    "btf": "BtfLoadAttr",
}
# Named members of union bpf_attr.
ATTR_NAMES_BY_MEMBER = {
    "batch": "MapBatchAttr",
    "test": "ProgTestRunAttr",
    "info": "ObjInfoAttr",
    "query": "ProgQueryAttr",
    "raw_tracepoint": "RawTracepointOpenAttr",
    "task_fd_query": "TaskFdQueryAttr",
    "link_create": "LinkCreateAttr",
    "link_update": "LinkUpdateAttr",
    "link_detach": "LinkDetachAttr",
    "enable_stats": "EnableStatsAttr",
    "iter_create": "IterCreateAttr",
    "prog_bind_map": "ProgBindMapAttr",
    "token_create": "TokenCreateAttr",
    "prog_stream_read": "ProgStreamReadAttr",
}
STRUCTS = {
    "bpf_prog_info": "ProgInfo",
    "bpf_map_info": "MapInfo",
    "bpf_btf_info": "BtfInfo",
    "bpf_link_info": "LinkInfo",
    "perf_event_attr": "PerfEventAttr",
    "bpf_func_info": "FuncInfo",
    "bpf_line_info": "LineInfo",
    "bpf_core_relo": "CoreRelo",
}
ENUMS = {
    "bpf_cmd": ("Cmd", "BPF_"),
    "bpf_map_type": ("MapType", "BPF_MAP_TYPE_"),
    "bpf_prog_type": ("ProgType", "BPF_PROG_TYPE_"),
    "bpf_attach_type": ("AttachType", "BPF_"),
    "bpf_link_type": ("LinkType", "BPF_LINK_TYPE_"),
    "bpf_func_id": ("HelperId", "BPF_FUNC_"),
    "bpf_stats_type": ("StatsType", "BPF_STATS_"),
    "bpf_core_relo_kind": ("CoreReloKind", "BPF_CORE_"),
    "perf_type_id": ("PerfType", "PERF_TYPE_"),
    "perf_sw_ids": ("PerfSwId", "PERF_COUNT_SW_"),
    "perf_hw_id": ("PerfHwId", "PERF_COUNT_HW_"),
    "bpf_perf_event_type": ("PerfEventLinkType", "BPF_PERF_EVENT_"),
}
CTYPE_INTS = {
    (1, False): "c_uint8", (1, True): "c_int8", (2, False): "c_uint16", (2, True): "c_int16",
    (4, False): "c_uint32", (4, True): "c_int32", (8, False): "c_uint64", (8, True): "c_int64",
}


class Generator:
    def __init__(self, types: list[dict]) -> None:
        self.by_id = {t["id"]: t for t in types}
        self.by_name = {(t["kind"], t["name"]): t for t in types}
        self.classes: list[str] = []  # emitted source blocks, dependencies first
        self.checks: list[tuple[str, int, list[tuple[str, int]]]] = []

    def resolve(self, type_id: int) -> dict:
        t = self.by_id[type_id]
        while t["kind"] in ("TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG"):
            t = self.by_id[t["type_id"]]
        return t

    def ctype(self, type_id: int, owner: str, member: str) -> tuple[str, int, int]:
        """(ctypes expression, size, alignment) of a member's type."""
        t = self.resolve(type_id)
        kind = t["kind"]
        if kind == "INT":
            signed = t["encoding"] == "SIGNED"
            if t["encoding"] == "CHAR" or t["name"] == "char":
                return "c_char", 1, 1
            return CTYPE_INTS[(t["size"], signed)], t["size"], t["size"]
        if kind in ("ENUM", "ENUM64"):
            signed = t.get("encoding") == "SIGNED"
            return CTYPE_INTS[(t["size"], signed)], t["size"], t["size"]
        if kind == "PTR":
            return "c_uint64", 8, 8
        if kind == "ARRAY":
            elem, size, align = self.ctype(t["type_id"], owner, member)
            return f"({elem} * {t['nr_elems']})", size * t["nr_elems"], align
        if kind in ("STRUCT", "UNION"):
            name = self.emit(t, f"{owner}_{member.strip('_') or 'anon'}")
            return name, t["size"], self.alignment(t)
        raise ValueError(f"{owner}.{member}: unsupported BTF kind {kind}")

    def alignment(self, t: dict) -> int:
        return max((self._align_of(m["type_id"]) for m in t["members"]), default=1)

    def _align_of(self, type_id: int) -> int:
        t = self.resolve(type_id)
        if t["kind"] in ("STRUCT", "UNION"):
            return self.alignment(t)
        if t["kind"] == "ARRAY":
            return self._align_of(t["type_id"])
        if t["kind"] == "PTR":
            return 8
        return min(t["size"], 8)

    def emit(self, t: dict, class_name: str) -> str:
        """Emit a ctypes class for a BTF struct/union; returns its name."""
        is_union = t["kind"] == "UNION"
        fields: list[str] = []
        anonymous: list[str] = []
        offset = 0  # bytes, for structs
        pad_count = 0
        anon_count = 0
        checks: list[tuple[str, int]] = []
        bit_checks: list[tuple[str, int, int]] = []
        for m in t["members"]:
            name = m["name"]
            bits = m["bits_offset"]
            if name == "(anon)":
                name = f"_anon{anon_count}"
                anon_count += 1
                anonymous.append(name)
            expr, size, align = self.ctype(m["type_id"], class_name, name)
            bitfield = m.get("bitfield_size")
            if bitfield:
                # ctypes packs bitfields LSB-first in the storage unit, as GCC does on little endian.
                unit_bits = size * 8
                unit_start = (bits // unit_bits) * unit_bits // 8
                if not is_union and unit_start > offset:
                    fields.append(f'("_pad{pad_count}", c_uint8 * {unit_start - offset}),')
                    pad_count += 1
                    offset = unit_start
                fields.append(f'("{name}", {expr}, {bitfield}),')
                bit_checks.append((name, bits, bitfield))
                offset = max(offset, unit_start + size) if not is_union else 0
                continue
            byte = bits // 8
            if not is_union:
                natural = (offset + align - 1) // align * align
                if byte != natural:
                    fields.append(f'("_pad{pad_count}", c_uint8 * {byte - offset}),')
                    pad_count += 1
                offset = byte + size
            fields.append(f'("{name}", {expr}),')
            checks.append((name, byte))
        if not is_union and offset < t["size"] and (t["size"] - offset) >= 1:
            natural_end = (offset + self.alignment(t) - 1) // self.alignment(t) * self.alignment(t)
            if natural_end != t["size"]:
                fields.append(f'("_pad{pad_count}", c_uint8 * {t["size"] - offset}),')
        base = "ctypes.Union" if is_union else "ctypes.Structure"
        body = [f"class {class_name}({base}):"]
        if t.get("name") and t["name"] != "(anon)":
            body.append(f'    """``{t["kind"].lower()} {t["name"]}`` ({t["size"]} bytes)."""')
        if anonymous:
            body.append(f"    _anonymous_ = {tuple(anonymous)!r}")
        body.append("    _fields_ = [")
        body.extend(f"        {f}" for f in fields)
        body.append("    ]")
        self.classes.append("\n".join(body))
        self.checks.append((class_name, t["size"], checks, bit_checks))
        return class_name

    def emit_enum(self, btf_name: str, py_name: str, prefix: str) -> str:
        t = self.by_name.get(("ENUM", btf_name)) or self.by_name.get(("ENUM64", btf_name))
        if t is None:
            raise SystemExit(f"enum {btf_name} not in this BTF")
        lines = [f"class {py_name}(enum.IntEnum):", f'    """``enum {btf_name}``."""']
        for v in t["values"]:
            name = v["name"]
            if name.startswith("__") or name.startswith("MAX_") or "MAX" == name.rsplit("_", 1)[-1]:
                continue
            short = name[len(prefix):] if name.startswith(prefix) else name
            if not short.isidentifier():
                short = "_" + short
            lines.append(f"    {short} = {v['val']}")
        return "\n".join(lines)

    def flag_constants(self) -> str:
        """Module constants from the UAPI's anonymous enums of BPF_F_* / BPF_* flags."""
        out = []
        seen = set()
        for t in self.by_id.values():
            if t["kind"] != "ENUM" or t["name"] != "(anon)":
                continue
            names = [v["name"] for v in t["values"]]
            if not any(n.startswith(("BPF_F_", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST")) for n in names):
                continue
            for v in t["values"]:
                if v["name"].startswith("BPF_") and v["name"] not in seen:
                    seen.add(v["name"])
                    out.append(f"{v['name']} = {v['val']}")
        return "\n".join(sorted(out))


def attr_classes(gen: Generator) -> list[str]:
    attr = gen.by_name[("UNION", "bpf_attr")]
    names = []
    for m in attr["members"]:
        t = gen.resolve(m["type_id"])
        if m["name"] != "(anon)":
            cls = ATTR_NAMES_BY_MEMBER.get(m["name"])
        else:
            first = t["members"][0]
            first_name = first["name"]
            if first_name == "(anon)":
                first_name = gen.resolve(first["type_id"])["members"][0]["name"]
            cls = ATTR_NAMES_BY_FIRST_MEMBER.get(first_name)
        if cls is None:
            print(f"warning: union bpf_attr member {m['name']} not mapped to a class; skipped", file=sys.stderr)
            continue
        gen.emit(t, cls)
        names.append(cls)
    return names


def verify(source: str, checks: list) -> None:
    namespace: dict = {}
    exec(compile(source, "_generated.py", "exec"), namespace)
    for cls_name, size, members, bitfields in checks:
        cls = namespace[cls_name]
        if ctypes.sizeof(cls) != size:
            raise SystemExit(f"{cls_name}: ctypes size {ctypes.sizeof(cls)} != BTF size {size}")
        for name, byte in members:
            actual = getattr(cls, name).offset
            if actual != byte:
                raise SystemExit(f"{cls_name}.{name}: ctypes offset {actual} != BTF offset {byte}")
        for name, bit, width in bitfields:
            obj = cls()
            setattr(obj, name, (1 << width) - 1)
            as_int = int.from_bytes(bytes(obj), "little")
            if as_int != ((1 << width) - 1) << bit:
                raise SystemExit(f"{cls_name}.{name}: ctypes bitfield is not at bit {bit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--btf", default="/sys/kernel/btf/vmlinux")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src/corebpf/_sys/_generated.py"))
    args = parser.parse_args()
    dump = subprocess.run(["bpftool", "btf", "dump", "file", args.btf, "-j"], check=True, capture_output=True)
    types = json.loads(dump.stdout)["types"]
    gen = Generator(types)
    release = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    attr_names = attr_classes(gen)
    for btf_name, py_name in STRUCTS.items():
        gen.emit(gen.by_name[("STRUCT", btf_name)], py_name)
    enums = [gen.emit_enum(b, p, prefix) for b, (p, prefix) in ENUMS.items()]
    header = (
        f'"""Kernel UAPI layouts and enums, generated by tools/gen_sys.py from the BTF of Linux {release}.\n\n'
        'Do not edit: re-run the generator. Every class was checked against the BTF\'s sizes and offsets.\n"""\n'
        "# ruff: noqa\n# fmt: off\nfrom __future__ import annotations\n\nimport ctypes\nimport enum\n"
        "from ctypes import c_char, c_int8, c_int16, c_int32, c_int64, c_uint8, c_uint16, c_uint32, c_uint64\n\n"
        f"GENERATED_FROM = {release!r}\n"
    )
    body = "\n\n\n".join(gen.classes + enums)
    source = f"{header}\n\n{body}\n\n\n# Flags from the UAPI's anonymous enums.\n{gen.flag_constants()}\n\n" \
             f"ATTR_CLASSES = {tuple(attr_names)!r}\n"
    source = re.sub(r"\n{4,}", "\n\n\n", source)
    verify(source, gen.checks)
    Path(args.out).write_text(source)
    print(f"wrote {args.out}: {len(gen.classes)} classes, {len(enums)} enums")


if __name__ == "__main__":
    main()
