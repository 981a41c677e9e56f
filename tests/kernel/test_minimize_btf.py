"""Minimal BTF for this kernel: for every core_* object the relocations against it equal those against
the full vmlinux BTF, it is a tiny fraction of the size, it is what ``bpftool gen min_core_btf`` writes
(byte for byte on this corpus), ``corebpf.load(..., btf=path)`` takes it and loads the same programs,
and ``corebpf btf minimize`` writes it per kernel (BTFHub trees too) with clear errors for bad input."""

from __future__ import annotations

import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import pytest

import corebpf
from corebpf.analysis.minimize import comparable, compare_relocations, minimize
from corebpf.btf import BTF
from corebpf.btf.core import TargetSet
from corebpf.elf.objectspec import ObjectSpec

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CORE = sorted(CORPUS.glob("core_*.bpf.o"))
VMLINUX = "/sys/kernel/btf/vmlinux"


def _spec(path: Path) -> ObjectSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ObjectSpec.from_file(path)


def _run(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from corebpf.cli.main import main; sys.argv[0] = 'corebpf'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.fixture(scope="module")
def full() -> BTF:
    return BTF.vmlinux()


@pytest.mark.parametrize("obj", CORE, ids=lambda p: p.name)
def test_minimal_relocations_equal_full(obj: Path, full: BTF) -> None:
    spec = _spec(obj)
    data = minimize([spec], full)
    small = BTF.from_bytes(data)
    assert compare_relocations(spec, TargetSet.from_btf(full), TargetSet.from_btf(small)) == []
    assert len(data) * 100 < len(full.raw), f"{len(data)} bytes is not far smaller than {len(full.raw)}"


@pytest.mark.parametrize("obj", CORE, ids=lambda p: p.name)
def test_same_as_bpftool_min_core_btf(obj: Path, full: BTF, tmp_path: Path) -> None:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    out = tmp_path / "bpftool.btf"
    r = subprocess.run(["bpftool", "gen", "min_core_btf", VMLINUX, str(out), str(obj)], capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0 and "min_core_btf" in r.stderr:
        pytest.skip(f"this bpftool has no working min_core_btf: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    assert minimize([_spec(obj)], full) == out.read_bytes()


def test_all_objects_at_once_same_as_bpftool(full: BTF, tmp_path: Path) -> None:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    out = tmp_path / "all.btf"
    subprocess.run(["bpftool", "gen", "min_core_btf", VMLINUX, str(out), *map(str, CORE)], check=True,
                   capture_output=True, timeout=300)
    assert minimize([_spec(o) for o in CORE], full) == out.read_bytes()


@pytest.mark.parametrize("obj", CORE, ids=lambda p: p.name)
def test_load_with_minimal_btf(obj: Path, full: BTF, tmp_path: Path) -> None:
    path = tmp_path / "min.btf"
    path.write_bytes(minimize([_spec(obj)], full))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with corebpf.load(obj) as ref:
                want = ({n: [comparable(r) for r in rs] for n, rs in ref.core_resolutions.items()},
                        {n: p.tag for n, p in ref.programs.items()})
    except corebpf.errors.CoreBPFError as e:
        pytest.skip(f"{obj.name} does not load here with the full BTF either: {e}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with corebpf.load(obj, btf=str(path)) as got:
            have = ({n: [comparable(r) for r in rs] for n, rs in got.core_resolutions.items()},
                    {n: p.tag for n, p in got.programs.items()})
    assert have[0] == want[0]
    # a target_type_id relocation writes a type id of the BTF used, which the minimal BTF renumbers
    # (as with bpftool's output): the instructions, hence the tags, differ only then
    renumbered = {n for n, rs in want[0].items() for r in rs if r["kind"] == "target_type_id"}
    assert {n: t for n, t in have[1].items() if n not in renumbered} == \
        {n: t for n, t in want[1].items() if n not in renumbered}


def _tar_xz(member: str, data: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return lzma.compress(raw.getvalue(), preset=0)


def test_cli_minimize_per_kernel(full: BTF, tmp_path: Path) -> None:
    hub = tmp_path / "hub" / "debian" / "12" / "x86_64"
    hub.mkdir(parents=True)
    (hub / "6.1.0-18-amd64.btf.tar.xz").write_bytes(_tar_xz("6.1.0-18-amd64.btf", full.raw))
    out = tmp_path / "out"
    objs = [str(CORPUS / "core_fields.bpf.o"), str(CORPUS / "core_bench.bpf.o")]
    r = _run("btf", "minimize", *objs, "--btf", "host", "--btf", str(tmp_path / "hub"), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["kernel"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {"host", "debian/12/x86_64/6.1.0-18-amd64"}
    for row in rows.values():
        assert row["differences"] == [] and 0 < row["size"] < row["full_size"] // 100
        assert Path(row["output"]).read_bytes() == minimize([_spec(Path(o)) for o in objs], full)
    assert (out / "debian" / "12" / "x86_64" / "6.1.0-18-amd64.btf").exists()
    human = _run("btf", "minimize", objs[0], "--btf", "host", "--out", str(out))
    assert human.returncode == 0 and "identical" in human.stdout


def test_cli_minimize_bad_input(tmp_path: Path) -> None:
    obj = str(CORPUS / "core_fields.bpf.o")
    assert _run("btf", "minimize", obj, "--btf", str(tmp_path / "nope"), "--out", str(tmp_path)).returncode == 2
    corrupt = tmp_path / "5.10.0-1.btf.tar.xz"
    corrupt.write_bytes(b"\xfd7zXZ\x00" + b"\x01" * 64)
    r = _run("btf", "minimize", obj, "--btf", str(corrupt), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "5.10.0-1" in r.stderr and "error" in r.stderr
    assert _run("btf", "minimize", str(tmp_path / "x.o"), "--btf", "host", "--out", str(tmp_path)).returncode == 2
