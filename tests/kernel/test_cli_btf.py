"""``corebpf btf dump`` / ``corebpf btf show`` on this kernel's BTF (CliRunner and subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from corebpf.btf import BTF
from corebpf.btf.builder import BTFBuilder
from corebpf.btf.c_dump import dump_c
from corebpf.cli.main import cli

VMLINUX = "/sys/kernel/btf/vmlinux"
pytestmark = pytest.mark.skipif(not os.path.exists(VMLINUX), reason="no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)")


@pytest.fixture()
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COREBPF_CACHE_DIR", str(tmp_path / "cache"))
    return CliRunner()  # click >= 8.2 keeps stderr apart (result.stderr)


def run(runner: CliRunner, *args: str):
    return runner.invoke(cli, ["btf", *args], catch_exceptions=False)


# -- dump ---------------------------------------------------------------------------------------------
def test_dump_types_as_c(runner: CliRunner) -> None:
    res = run(runner, "dump", "task_struct")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("#ifndef __VMLINUX_H__\n")
    assert "\nstruct task_struct {\n" in res.stdout
    assert res.stdout == dump_c(BTF.vmlinux(), ["task_struct"])


def test_dump_whole_kernel_to_a_file_twice_uses_the_cache(runner: CliRunner, tmp_path: Path) -> None:
    out1, out2 = tmp_path / "a.h", tmp_path / "b.h"
    assert run(runner, "dump", "-o", str(out1)).exit_code == 0
    assert run(runner, "dump", "--output", str(out2)).exit_code == 0
    assert out1.read_text() == out2.read_text() == dump_c(BTF.vmlinux())
    assert list((tmp_path / "cache").glob("cdump-*.h"))
    out3 = tmp_path / "c.h"
    assert run(runner, "dump", "--no-cache", "--no-header", "-o", str(out3)).exit_code == 0
    assert out3.read_text() == dump_c(BTF.vmlinux(), header=False)


def test_kernel_btf_is_mapped_not_copied() -> None:
    import mmap

    from corebpf.btf.c_dump_table import RawTypes
    from corebpf.cli.btf import _read

    data = _read(VMLINUX)
    if not isinstance(data, mmap.mmap):
        pytest.skip("this kernel does not allow mmap of /sys/kernel/btf/vmlinux (Linux 6.16+)")
    with open(VMLINUX, "rb") as f:
        raw = f.read()
    assert data[:] == raw
    assert dump_c(RawTypes(data), ["task_struct"]) == dump_c(RawTypes(raw), ["task_struct"])


def test_dump_explicit_file_and_split_base(runner: CliRunner, tmp_path: Path) -> None:
    vml = BTF.vmlinux()
    b = BTFBuilder(base=vml)
    p = b.add_ptr(vml.find("task_struct").id)
    b.add_struct("corebpf_cli_split", 8, [("task", p, 0)])
    path = tmp_path / "split.btf"
    path.write_bytes(b.to_btf().raw)
    res = run(runner, "dump", str(path), "--base", VMLINUX, "corebpf_cli_split", "--no-header")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "struct task_struct;\n\nstruct corebpf_cli_split {\n\tstruct task_struct *task;\n};\n\n"
    res = run(runner, "dump", str(path), "-B", VMLINUX, "--format", "json")
    assert res.exit_code == 0
    assert [t["name"] for t in json.loads(res.stdout)["types"]] == ["(anon)", "corebpf_cli_split"]


def test_dump_json_parses_and_matches_the_reader(runner: CliRunner) -> None:
    res = run(runner, "dump", "--format", "json", "list_head", "task_struct")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    vml = BTF.vmlinux()
    by_name = {t["name"]: t for t in doc["types"] if t["kind"] == "STRUCT"}
    task = vml.find("task_struct")
    rec = by_name["task_struct"]
    assert rec["size"] == task.size and rec["vlen"] == len(task.members)
    assert [m["bits_offset"] for m in rec["members"]] == [m.bit_offset for m in task.members]
    ids = {t["id"] for t in doc["types"]}
    for m in rec["members"]:  # dependencies are included
        assert m["type_id"] in ids or m["type_id"] == 0
    pretty = run(runner, "dump", "--format", "json", "--pretty", "list_head")
    assert json.loads(pretty.stdout) == json.loads(run(runner, "dump", "-f", "json", "list_head").stdout)
    assert "\n" in pretty.stdout.strip()


def test_dump_unknown_type_lists_close_matches(runner: CliRunner) -> None:
    res = run(runner, "dump", "task_strcut")
    assert res.exit_code == 1
    assert "task_strcut" in res.stderr and "did you mean" in res.stderr and "task_struct" in res.stderr
    assert res.stdout == ""
    res = run(runner, "dump", "qqqqqqqqqqqqqqqqqqqqqq")
    assert res.exit_code == 1 and "no similar name" in res.stderr


def test_dump_usage_errors_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    res = run(runner, "dump", str(tmp_path / "missing.btf"))
    assert res.exit_code == 2 and "no such file" in res.stderr
    res = run(runner, "dump", "--module", "corebpf_no_such_module")
    assert res.exit_code == 2 and "corebpf_no_such_module" in res.stderr
    res = run(runner, "dump", "--format", "yaml")
    assert res.exit_code == 2
    res = run(runner, "dump", VMLINUX, "--module", "x")
    assert res.exit_code == 2


def test_dump_broken_file_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.btf"
    raw = Path(VMLINUX).read_bytes()
    bad.write_bytes(raw[:4096])
    res = run(runner, "dump", str(bad), "--no-cache")
    assert res.exit_code == 1 and "truncated" in res.stderr.lower() or "past" in res.stderr


def test_dump_module_when_present(runner: CliRunner) -> None:
    mods = BTF.module_names()
    if not mods:
        pytest.skip("no module BTF under /sys/kernel/btf")
    res = run(runner, "dump", "--module", mods[0], "--format", "json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["types"][0]["id"] == BTF.vmlinux().last_id + 1


def test_c_dump_does_not_import_numpy(tmp_path: Path) -> None:
    """The C path loads only standard-library modules (RSS: see bench/btf_dump.py)."""
    code = ("import sys\nfrom corebpf.cli.main import cli\n"
            "try:\n    cli.main(['btf', 'dump', '--no-cache', '-o', sys.argv[1], 'sk_buff'], standalone_mode=False)\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
            "assert 'corebpf.btf.reader' not in sys.modules\nprint('ok')\n")
    out = tmp_path / "skb.h"
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    assert out.read_text() == dump_c(BTF.vmlinux(), ["sk_buff"])


# -- show ---------------------------------------------------------------------------------------------
def test_show_struct_layout_like_pahole(runner: CliRunner) -> None:
    res = run(runner, "show", "task_struct")
    assert res.exit_code == 0, res.stderr
    task = BTF.vmlinux().find("task_struct")
    text = res.stdout
    assert text.startswith("struct task_struct {\n")
    assert f"/* size: {task.size}, cachelines: {-(-task.size // 64)}, members: {len(task.members)} */" in text
    assert "/* --- cacheline 1 boundary (64 bytes)" in text
    pid = task.member("pid")
    assert any(line.strip().startswith("pid_t pid;") and f"/* {pid.offset:5d}" in line for line in text.splitlines())


def test_show_json_offsets_and_holes(runner: CliRunner) -> None:
    res = run(runner, "show", "sk_buff", "--json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    skb = BTF.vmlinux().find("sk_buff")
    assert doc["size"] == skb.size and doc["kind"] == "struct" and doc["name"] == "sk_buff"
    assert [m["bit_offset"] for m in doc["members"]] == [m.effective_bit_offset for m in skb.members]
    # everything is accounted for: members + holes + padding cover the struct (bitfield bits included)
    assert doc["sum_members"] + doc["sum_holes"] + doc["padding"] <= skb.size
    bitfields = [m for m in doc["members"] if m.get("bitfield_size")]
    anon = [m for m in doc["members"] if "members" in m]
    assert bitfields and anon


def test_show_typedef_enum_and_other_kinds(runner: CliRunner) -> None:
    res = run(runner, "show", "pid_t")
    assert res.exit_code == 0 and res.stdout.startswith("typedef __kernel_pid_t pid_t;")
    res = run(runner, "show", "bpf_map_type")
    assert res.exit_code == 0 and "BPF_MAP_TYPE_HASH = 1," in res.stdout
    res = run(runner, "show", "bpf_map_type", "--json")
    assert {"name": "BPF_MAP_TYPE_HASH", "val": 1} in json.loads(res.stdout)["values"]


def test_show_unknown_type_suggests(runner: CliRunner) -> None:
    res = run(runner, "show", "sk_bufff")
    assert res.exit_code == 1 and "sk_buff" in res.stderr and "did you mean" in res.stderr
    res = run(runner, "show", "task_struct", "--btf", "/nonexistent/btf")
    assert res.exit_code == 2 and "no such file" in res.stderr


def test_console_script_end_to_end(tmp_path: Path) -> None:
    exe = shutil.which("corebpf", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the corebpf console script is not installed in this environment")
    env = dict(os.environ, COREBPF_CACHE_DIR=str(tmp_path))
    res = subprocess.run([exe, "btf", "dump", "list_head", "--no-header"], capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout == "struct list_head {\n\tstruct list_head *next;\n\tstruct list_head *prev;\n};\n\n"
    res = subprocess.run([exe, "btf", "show", "no_such_struct_xyz"], capture_output=True, text=True, env=env)
    assert res.returncode == 1 and "corebpf: error:" in res.stderr
