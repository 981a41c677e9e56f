"""The object's BTF at load: finalised and loaded (func/line info reach the kernel), sanitised for
kernels without newer kinds, dropped with a warning when the kernel refuses it; CO-RE against a BTF
the user gives; missing-license programs explained."""

from __future__ import annotations

import struct
import sys
import warnings
from pathlib import Path

import pytest

import corebpf
from corebpf.btf.sanitize import BTFFeatures
from corebpf.elf import ObjectSpec
from corebpf.errors import VerifierError
from corebpf.loader.btf import BTFUnavailableWarning, load_object_btf
from corebpf.programs.info import raw_prog_info

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from test_elf_errors import raw, rename_section  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def test_func_and_line_info_reach_the_kernel():
    # b2b_xdp: bpf2bpf calls only (4.16); the object's bpf_loop callback (b2b_loop) needs 5.17
    with corebpf.load(CORPUS / "obj_bpf2bpf.bpf.o", programs=["b2b_xdp"]) as obj:
        info = raw_prog_info(obj.programs["b2b_xdp"].fileno())
        assert info.btf_id == obj.btf.id
        # + the appended subprograms weigh, fold and global_bucket
        assert info.nr_func_info == len(obj.spec.programs["b2b_xdp"].func_info) + 3
        assert info.nr_line_info > 0


@pytest.mark.parametrize("name", ["obj_globals.bpf.o", "obj_ksyms.bpf.o", "core_fields.bpf.o", "obj_kconfig.bpf.o"])
def test_sanitised_btf_loads_for_a_kernel_without_new_kinds(name: str):
    spec = ObjectSpec.from_file(CORPUS / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_object_btf(spec, features=BTFFeatures.none())
    assert loaded is not None and loaded.id > 0
    loaded.close()


def test_refused_btf_falls_back_to_no_btf():
    # a DATASEC without its ELF section has no size: the kernel refuses the BTF, the programs still load
    data = rename_section(raw("raw_tp.bpf.o"), "license", "licensx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = ObjectSpec.from_bytes(bytes(data))
    spec.license = "GPL"
    with pytest.warns(BTFUnavailableWarning, match="loading without BTF"):
        obj = spec.load()
    with obj:
        assert obj.btf is None
        info = raw_prog_info(obj.programs["on_switch"].fileno())
        assert info.btf_id == 0 and info.nr_func_info == 0


def test_missing_license_is_explained():
    data = rename_section(raw("core_fields.bpf.o"), "license", "licensx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(VerifierError, match="GPL-restricted.*no 'license' section"):
            corebpf.load(bytes(data))


def test_core_against_a_btf_file_gives_the_same_code():
    with corebpf.load(CORPUS / "core_fields.bpf.o") as a, \
            corebpf.load(CORPUS / "core_fields.bpf.o", btf="/sys/kernel/btf/vmlinux") as b:
        assert {n: p.tag for n, p in a.programs.items()} == {n: p.tag for n, p in b.programs.items()}
        assert sum(len(r) for r in b.core_resolutions.values()) > 0
