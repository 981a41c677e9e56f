"""``compat`` against this kernel agrees with real loads: for every core_* and obj_* object of the
corpus, compat says ok for a program exactly when ``corebpf.load`` succeeds, for reasons that are
about CO-RE, externs, types and helpers (verifier failures of the code itself are out of its reach).
Also: the CLI matrix and exit codes, hand-edited copies of this kernel's BTF, bad input."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import pytest

import corebpf
from corebpf.analysis.compat import check_compat
from corebpf.analysis.minimize import minimize
from corebpf.analysis.targets import KernelTarget, find_targets
from corebpf.analysis.kernel_versions import KernelVersion
from corebpf.btf import BTF, Kind
from corebpf.btf.builder import BTFBuilder
from corebpf.elf.objectspec import ObjectSpec

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
OBJECTS = sorted([*CORPUS.glob("core_*.bpf.o"), *CORPUS.glob("obj_*.bpf.o")])
# programs whose load fails in the verifier for their own code: not something compat can see
VERIFIER_ONLY = {("obj_verifier_fail.bpf.o", "vf_bad")}


def _spec(path: Path) -> ObjectSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ObjectSpec.from_file(path)


def _loads(path: Path, programs: "list[str] | None") -> tuple[bool, str]:
    pin_root = f"/sys/fs/bpf/corebpf-compat-{uuid.uuid4().hex[:8]}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with corebpf.load(path, programs=programs, pin_root=pin_root):
                return True, ""
    except corebpf.errors.CoreBPFError as e:
        return False, str(e)
    finally:
        if os.path.isdir(pin_root):
            for f in os.listdir(pin_root):
                os.unlink(os.path.join(pin_root, f))
            os.rmdir(pin_root)


@pytest.fixture(scope="module")
def host() -> list[KernelTarget]:
    return find_targets(["host"])


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda p: p.name)
def test_compat_agrees_with_load(obj: Path, host: list[KernelTarget]) -> None:
    spec = _spec(obj)
    report = check_compat(spec, host, probe=True)
    kernel = report.kernels[0]
    assert kernel.error is None, kernel.error
    verdicts = {n: v for n, v in kernel.verdicts.items() if (obj.name, n) not in VERIFIER_ONLY}
    bad = [n for n, v in verdicts.items() if not v.ok]
    good = [n for n in verdicts if n not in bad]
    if good:
        ok, err = _loads(obj, good)
        assert ok, f"compat says {good} load here, but: {err}"
    for name in bad:
        ok, err = _loads(obj, [name])
        assert not ok, f"compat says {name} fails ({verdicts[name].text}) but it loads"


def test_trampolines_flagged_only_with_live_probes(host: list[KernelTarget]) -> None:
    from corebpf import features

    if features.attach_method("fentry").supported:
        pytest.skip("fentry loads on this kernel: nothing is refused here")
    spec = _spec(CORPUS / "obj_fentry.bpf.o")
    probed = check_compat(spec, host, probe=True).kernels[0].verdicts
    assert all(any(p.startswith("needs trampolines: refused here") for p in v.problems) for v in probed.values())
    static = check_compat(spec, find_targets(["host"]), probe=False).kernels[0].verdicts
    assert all(v.ok for v in static.values()), {n: v.problems for n, v in static.items()}
    as_file = check_compat(spec, find_targets(["/sys/kernel/btf/vmlinux"]), probe=True).kernels[0].verdicts
    assert all(v.ok for v in as_file.values())  # a BTF file is another kernel: no live probes


# -- hand-edited copies of this kernel's BTF ---------------------------------------------------------
def _edit_kernel_btf(drop: dict[str, set[str]], rename: dict[str, dict[str, str]], drop_enum: set[str]) -> BTF:
    """This kernel's BTF minimised for the corpus' CO-RE objects (fast to rebuild), then with struct
    members removed/renamed and helper enumerators removed."""
    import copy

    full = BTF.vmlinux()
    small = BTF.from_bytes(minimize([_spec(p) for p in sorted(CORPUS.glob("core_*.bpf.o"))], full))
    b = BTFBuilder()
    for t in small:
        if t.kind == Kind.STRUCT and (t.name in drop or t.name in rename):
            e = copy.copy(t)
            e.members = [m._replace(name=rename.get(t.name, {}).get(m.name, m.name)) for m in t.members
                         if m.name not in drop.get(t.name, set())]
            b.copy_type(e)
    for t in small:
        b.copy_type(t)
    helpers = full.find("bpf_func_id", Kind.ENUM)
    b.add_enum("bpf_func_id", [(v.name, v.value) for v in helpers.values if v.name not in drop_enum])
    return BTF.from_bytes(b.encode())


def test_edited_kernel_btf_reports_the_right_fields() -> None:
    btf = _edit_kernel_btf(drop={"task_struct": {"start_time"}}, rename={"task_struct": {"real_parent": "rp"}},
                           drop_enum={"BPF_FUNC_probe_read_kernel_str"})
    t = KernelTarget("edited-6.18", "<edited>", KernelVersion(6, 18), _btf=btf)
    v = check_compat(_spec(CORPUS / "core_fields.bpf.o"), [t]).kernels[0].verdicts
    raw = v["exec_raw"].problems
    assert "missing byte_off struct task_struct.start_time" in raw
    assert "missing byte_off struct task_struct.real_parent" in raw
    assert "helper bpf_probe_read_kernel_str missing (mainline since 5.5)" in raw
    assert not any("pid" in p or "comm" in p for p in raw), raw
    # exec_btf has no attach target in the minimised BTF and reads the same fields
    assert "missing byte_off struct task_struct.start_time" in v["exec_btf"].problems
    untouched = check_compat(_spec(CORPUS / "core_bitfields.bpf.o"), [t]).kernels[0]
    assert all(not any("task_struct" in p for p in x.problems) for x in untouched.verdicts.values())


# -- CLI ---------------------------------------------------------------------------------------------
def _run(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from corebpf.cli.main import main; sys.argv[0] = 'corebpf'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_cli_matrix_and_exit_codes(tmp_path: Path) -> None:
    ok = _run("compat", str(CORPUS / "core_fields.bpf.o"), "--btf", "host", "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["ok"] and data["kernels"][0]["name"] == "host"
    assert set(data["programs"]) == {"exec_raw", "exec_btf"}
    # a 5.4-named copy of this kernel's BTF without its enums: versions decide, and fail bpf_loop
    small = BTF.from_bytes(minimize([_spec(CORPUS / "loops.bpf.o")], BTF.vmlinux()))
    (tmp_path / "5.4.0-100-generic.btf").write_bytes(small.raw)
    old = _run("compat", str(CORPUS / "loops.bpf.o"), "--btf", str(tmp_path / "5.4.0-100-generic.btf"))
    assert old.returncode == 1
    assert "helper bpf_loop needs >= 5.17" in old.stdout
    human = _run("compat", str(CORPUS / "obj_fentry.bpf.o"), "--btf", "host")
    from corebpf import features

    if not features.attach_method("fentry").supported:
        assert human.returncode == 1 and "needs trampolines: refused here" in human.stdout


def test_cli_bad_input(tmp_path: Path) -> None:
    missing = _run("compat", str(CORPUS / "core_fields.bpf.o"), "--btf", str(tmp_path / "nope.btf"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    corrupt = tmp_path / "5.10.0-9.btf.tar.xz"
    corrupt.write_bytes(lzma.compress(b"garbage" * 100)[:40])
    bad = _run("compat", str(CORPUS / "core_fields.bpf.o"), "--btf", str(corrupt), "--json")
    assert bad.returncode == 1
    k = json.loads(bad.stdout)["kernels"][0]
    assert k["error"] and "5.10.0-9" in k["name"]
    no_obj = _run("compat", str(tmp_path / "nope.bpf.o"), "--btf", "host")
    assert no_obj.returncode == 2
    not_elf = tmp_path / "x.bpf.o"
    not_elf.write_bytes(b"\x7fELF" + b"\0" * 20)
    broken = _run("compat", str(not_elf), "--btf", "host")
    assert broken.returncode == 1 and "error" in broken.stderr
    none = _run("compat", str(CORPUS / "core_fields.bpf.o"))
    assert none.returncode == 2
    unknown = _run("compat", str(CORPUS / "core_fields.bpf.o"), "--btf", "debian:4.19")
    assert unknown.returncode == 1 and "debian:4.19" in unknown.stdout + unknown.stderr
    vm = _run("compat", str(CORPUS / "core_fields.bpf.o"), "--vm", "debian:4.19")
    assert vm.returncode == 1 and "4.19" in vm.stderr and "error" in vm.stderr
