"""``corebpf prog|map|link`` against the real kernel: in-process (CliRunner) and as a subprocess,
compared with bpftool where both can see the same objects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from corebpf._sys import FD, MapType, ProgType, ops, uapi
from corebpf.cli.main import cli
from corebpf.inventory import bpffs_mounts
from corebpf.inventory.pins import identify

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CORPUS_OBJECTS = ["socket_filter", "subprog", "loops", "atomics", "tailcall", "globals", "tc", "tracepoint",
                  "raw_tp", "cgroup_skb"]
RET0 = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
CLI = [str(Path(sys.executable).with_name("corebpf"))]
if not os.path.exists(CLI[0]):
    CLI = [sys.executable, "-c", "from corebpf.cli.main import main; main()"]


def load_prog(name: str, prog_type: int = ProgType.RAW_TRACEPOINT) -> FD:
    lic = b"GPL\0"
    attr = uapi.ProgLoadAttr(prog_type=prog_type, insn_cnt=2, insns=ops.addr(RET0), license=ops.addr(lic))
    attr.prog_name = name.encode()
    fd = ops.prog_load(attr)
    assert fd >= 0, os.strerror(-fd)
    return FD(fd)


def oid(fd: FD) -> int:
    found = identify(fd)
    assert found is not None
    return found[1]


def run(*args: str) -> "object":
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


@pytest.fixture
def objects() -> Iterator[dict[str, int]]:
    """A map, a program using nothing and a raw tracepoint link on it, all held by this process."""
    with ops.map_create(MapType.HASH, 4, 8, 8, name="cli_hash") as m, load_prog("cli_prog") as p, \
            ops.raw_tracepoint_open("sys_enter", int(p)) as lk:
        ops.map_update_elem(int(m), (7).to_bytes(4, "little"), (0x1122).to_bytes(8, "little"))
        yield {"map": oid(m), "prog": oid(p), "link": oid(lk)}


def test_prog_list_and_show(objects: dict[str, int]) -> None:
    res = run("prog", "list", "--json")
    assert res.exit_code == 0
    progs = {p["id"]: p for p in json.loads(res.stdout)}
    mine = progs[objects["prog"]]
    assert mine["name"] == "cli_prog" and mine["type"] == "RAW_TRACEPOINT" and len(mine["tag"]) == 16
    assert mine["jited"] in (True, False) and "T" in mine["load_time"]
    assert {o["pid"] for o in mine["owners"]} == {os.getpid()}
    res = run("prog", "show", str(objects["prog"]), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["id"] == objects["prog"]
    assert json.loads(res.stdout)["link_ids"] == [objects["link"]]
    res = run("prog", "show", str(objects["prog"]))
    assert res.exit_code == 0 and "cli_prog" in res.stdout and str(os.getpid()) in res.stdout
    res = run("prog", "list")
    assert res.exit_code == 0 and "cli_prog" in res.stdout


def test_missing_ids_fail_with_exit_1() -> None:
    for group in ("prog", "map", "link"):
        res = CliRunner().invoke(cli, [group, "show", "4294967290"])
        assert res.exit_code == 1, (group, res.output)
        assert f"no {group if group != 'prog' else 'program'} with id 4294967290" in res.stderr
    for args in (["prog", "dump", "4294967290"], ["map", "dump", "4294967290"]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 1 and "no " in res.stderr


def test_usage_errors_exit_2() -> None:
    for args in (["prog", "show", "abc"], ["map", "dump"], ["link", "list", "--bogus"], ["prog", "nope"]):
        assert CliRunner().invoke(cli, args).exit_code == 2, args


def test_map_list_show_dump(objects: dict[str, int]) -> None:
    res = run("map", "list", "--json")
    maps = {m["id"]: m for m in json.loads(res.stdout)}
    assert maps[objects["map"]]["name"] == "cli_hash" and maps[objects["map"]]["type"] == "HASH"
    res = run("map", "show", str(objects["map"]), "--json")
    shown = json.loads(res.stdout)
    assert (shown["key_size"], shown["value_size"], shown["max_entries"], shown["frozen"]) == (4, 8, 8, False)
    res = run("map", "dump", str(objects["map"]), "--json")
    assert json.loads(res.stdout) == [{"key": ["0x07", "0x00", "0x00", "0x00"],
                                       "value": ["0x22", "0x11", "0x00", "0x00", "0x00", "0x00", "0x00", "0x00"]}]
    res = run("map", "dump", str(objects["map"]))
    assert "key: 07 00 00 00  value: 22 11 00 00 00 00 00 00" in res.stdout and "Found 1 element" in res.stdout


def test_map_dump_percpu_and_unwalkable() -> None:
    with ops.map_create(MapType.PERCPU_HASH, 4, 4, 4, name="cli_pcpu") as pc, \
            ops.map_create(MapType.RINGBUF, 0, 0, 4096, name="cli_rb") as rb:
        from corebpf.inventory.dump import possible_cpu_count
        n = possible_cpu_count()
        ops.map_update_elem(int(pc), (1).to_bytes(4, "little"), bytes(range(8)) * n)
        out = json.loads(run("map", "dump", str(oid(pc)), "--json").stdout)
        assert len(out) == 1 and [v["cpu"] for v in out[0]["values"]] == list(range(n))
        assert out[0]["values"][0]["value"] == ["0x00", "0x01", "0x02", "0x03"]
        res = CliRunner().invoke(cli, ["map", "dump", str(oid(rb))])
        assert res.exit_code == 1 and "RINGBUF" in res.stderr


def test_link_list_and_show(objects: dict[str, int]) -> None:
    links = {lk["id"]: lk for lk in json.loads(run("link", "list", "--json").stdout)}
    mine = links[objects["link"]]
    assert mine["type"] == "RAW_TRACEPOINT" and mine["prog_id"] == objects["prog"]
    assert mine["attach"] == {"tp_name": "sys_enter", "cookie": 0, "target": "sys_enter"}
    human = run("link", "show", str(objects["link"]))
    assert human.exit_code == 0 and "sys_enter" in human.stdout
    assert json.loads(run("link", "show", str(objects["link"]), "--json").stdout)["id"] == objects["link"]
    assert "sys_enter" in run("link", "list").stdout


def test_subprocess_json_matches_bpftool(objects: dict[str, int]) -> None:
    if not shutil.which("bpftool"):
        pytest.skip("needs bpftool")
    proc = subprocess.run([*CLI, "prog", "list", "--json"], capture_output=True, text=True, check=True)
    ours = {p["id"]: p for p in json.loads(proc.stdout)}
    theirs = {p["id"]: p for p in json.loads(subprocess.run(["bpftool", "prog", "list", "-j"], capture_output=True,
                                                             text=True, check=True).stdout)}
    common = set(ours) & set(theirs)
    assert objects["prog"] in common
    for pid in common:
        assert ours[pid]["tag"] == theirs[pid]["tag"], pid
        # bpftool shows the BTF name when the kernel's 15-byte name is truncated: so does full_name
        assert theirs[pid]["name"] == ours[pid]["full_name"], pid
        assert theirs[pid]["name"].startswith(ours[pid]["name"]), pid
        assert ours[pid]["xlated_size"] == theirs[pid].get("bytes_xlated", 0)
        assert ours[pid]["created_by_uid"] == theirs[pid]["uid"]
    maps_ours = {m["id"]: m for m in json.loads(subprocess.run([*CLI, "map", "list", "--json"], capture_output=True,
                                                               text=True, check=True).stdout)}
    maps_theirs = {m["id"]: m for m in json.loads(subprocess.run(["bpftool", "map", "list", "-j"],
                                                                 capture_output=True, text=True, check=True).stdout)}
    assert objects["map"] in set(maps_ours) & set(maps_theirs)
    for mid in set(maps_ours) & set(maps_theirs):
        assert (maps_ours[mid]["key_size"], maps_ours[mid]["value_size"], maps_ours[mid]["max_entries"]) == \
            (maps_theirs[mid]["bytes_key"], maps_theirs[mid]["bytes_value"], maps_theirs[mid]["max_entries"])


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    mounts = bpffs_mounts()
    if not mounts:
        os.makedirs("/sys/fs/bpf", exist_ok=True)
        if subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"]).returncode != 0:
            pytest.skip("bpffs is not mounted and cannot be mounted")
        mounts = bpffs_mounts()
    path = Path(mounts[0].mount_point) / f"corebpf-cli-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)  # rmdir/unlink drop pins on bpffs


def test_prog_dump_equals_bpftool_dump_xlated(pin_dir: Path) -> None:
    if not shutil.which("bpftool"):
        pytest.skip("needs bpftool")
    version = subprocess.run(["bpftool", "version"], capture_output=True, text=True).stdout.split()[1]
    dialect = version.lstrip("v")  # print exactly as the installed bpftool release does
    compared = 0
    for name in CORPUS_OBJECTS:
        obj = CORPUS / f"{name}.bpf.o"
        if not obj.exists():
            continue
        target = pin_dir / name
        if subprocess.run(["bpftool", "prog", "loadall", str(obj), str(target)], capture_output=True).returncode:
            continue  # a program type this kernel or bpftool refuses
        for pin in sorted(target.iterdir()):
            prog_id = json.loads(subprocess.run(["bpftool", "prog", "show", "pinned", str(pin), "-j"],
                                                capture_output=True, text=True, check=True).stdout)["id"]
            expected = subprocess.run(["bpftool", "prog", "dump", "xlated", "id", str(prog_id)],
                                      capture_output=True, text=True, check=True).stdout.splitlines()
            got = run("prog", "dump", str(prog_id), "--dialect", dialect)
            assert got.exit_code == 0
            assert got.stdout.splitlines() == expected, f"{name}/{pin.name}"
            as_json = json.loads(run("prog", "dump", str(prog_id), "--dialect", dialect, "--json").stdout)
            assert as_json == {"id": prog_id, "insns": expected}
            compared += 1
    print(f"compared {compared} programs")
    assert compared >= 5, f"only {compared} corpus programs could be compared"


def test_every_command_on_every_object_of_the_host(objects: dict[str, int]) -> None:
    """show (and dump) on every object the host has right now: exit 0, or 1 when it vanished meanwhile;
    never a traceback. Capped per kind to keep the run short on busy hosts."""
    from corebpf import inventory
    snap = inventory.snapshot(owners=False, pins=False)
    runner = CliRunner()

    def some(records: tuple, mine: int) -> list[str]:
        return sorted({str(r.id) for r in records[:60]} | {str(mine)})

    progs, maps, links = some(snap.programs, objects["prog"]), some(snap.maps, objects["map"]), \
        some(snap.links, objects["link"])
    jobs = [["prog", "show", i, "--json"] for i in progs] + [["prog", "dump", i] for i in progs]
    jobs += [["map", "show", i, "--json"] for i in maps] + [["map", "dump", i, "--limit", "16"] for i in maps]
    jobs += [["link", "show", i, "--json"] for i in links]
    for args in jobs:
        res = runner.invoke(cli, args)
        assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.exception)
        assert res.exit_code in (0, 1), (args, res.output)
        if res.exit_code == 1:
            assert res.stderr.startswith("corebpf: error:"), (args, res.stderr)
        elif "--json" in args:
            assert json.loads(res.stdout)["id"] == int(args[2])


def test_objects_named_by_pin(objects: dict[str, int], pin_dir: Path) -> None:
    from corebpf._sys import ops as _ops
    for kind in ("prog", "map", "link"):
        with _ops.get_fd_by_id(kind, objects[kind]) as fd:
            _ops.obj_pin(int(fd), str(pin_dir / kind))
        res = run(kind, "show", "--pinned", str(pin_dir / kind), "--json")
        assert res.exit_code == 0 and json.loads(res.stdout)["id"] == objects[kind]
        assert json.loads(res.stdout)["pins"] == [str(pin_dir / kind)]
    assert json.loads(run("map", "dump", "--pinned", str(pin_dir / "map"), "--json").stdout)[0]["key"][0] == "0x07"
    assert run("prog", "dump", "--pinned", str(pin_dir / "prog")).stdout.strip().endswith("exit")
    wrong = CliRunner().invoke(cli, ["map", "show", "--pinned", str(pin_dir / "prog")])
    assert wrong.exit_code == 1 and "pins a program, not a map" in wrong.stderr
    missing = CliRunner().invoke(cli, ["prog", "show", "--pinned", str(pin_dir / "nothing")])
    assert missing.exit_code == 1 and "nothing pinned at" in missing.stderr
    both = CliRunner().invoke(cli, ["prog", "show", "1", "--pinned", str(pin_dir / "prog")])
    assert both.exit_code == 2
    assert CliRunner().invoke(cli, ["prog", "dump"]).exit_code == 2
    assert CliRunner().invoke(cli, ["prog", "dump", str(objects["prog"]), "--dialect", "bogus"]).exit_code == 2
    for dialect in ("current", "legacy", "7.1.0", "v7.5"):
        assert run("prog", "dump", str(objects["prog"]), "--dialect", dialect).stdout.strip().endswith("exit")


def test_map_show_names_the_programs_using_it() -> None:
    with ops.map_create(MapType.ARRAY, 4, 4, 1, name="cli_used") as m:
        ld = bytes([0x18, 0x11, 0, 0]) + int(m).to_bytes(4, "little") + bytes(8)
        lic = b"GPL\0"
        insns = ld + RET0
        attr = uapi.ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insn_cnt=len(insns) // 8,
                                 insns=ops.addr(insns), license=ops.addr(lic))
        fd = ops.prog_load(attr)
        assert fd >= 0, os.strerror(-fd)
        with FD(fd) as p:
            shown = json.loads(run("map", "show", str(oid(m)), "--json").stdout)
            assert shown["prog_ids"] == [oid(p)]
            assert "used by programs" in run("map", "show", str(oid(m))).stdout


def test_inventory_processes_lists_this_process(objects: dict[str, int]) -> None:
    from corebpf import inventory
    mine = [p for p in inventory.processes() if p.pid == os.getpid()]
    assert mine and objects["prog"] in mine[0].prog_ids and objects["link"] in mine[0].link_ids
