"""``compat`` verdicts agree with real loads inside other kernels (Debian 5.10, 6.1, 6.12 booted in
QEMU through ``corebpf.kernels``): for every core_* and obj_* object and a few that need new kernels,
compat against the kernel's BTF says ok for a program exactly when it loads in that kernel.

Each kernel takes 2-3 minutes under TCG, so this runs when asked:
``COREBPF_VM_TESTS=debian:5.10,debian:6.1,debian:6.12`` (the kernels to boot).
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

from corebpf.analysis.compat import check_compat
from corebpf.analysis.compat_vm import run_loads
from corebpf.analysis.targets import find_targets
from corebpf.elf.objectspec import ObjectSpec

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
OBJECTS = sorted({*CORPUS.glob("core_*.bpf.o"), *CORPUS.glob("obj_*.bpf.o"),
                  *(CORPUS / n for n in ("loops.bpf.o", "kfunc.bpf.o", "atomics.bpf.o", "tp_btf.bpf.o",
                                         "iter.bpf.o"))})
# failures compat cannot see, with why
EXCLUDED = {
    ("obj_verifier_fail.bpf.o", "vf_bad"): "the verifier rejects the program's own code",
    # the VM guest sees the host's /boot, not the Debian package's config, and Debian kernels have no
    # /proc/config.gz: non-weak kconfig externs have no value there (compat notes this requirement)
    ("obj_kconfig.bpf.o", "kconfig_read"): "no kernel config inside the VM guest",
}
SPECS = [s for s in os.environ.get("COREBPF_VM_TESTS", "").split(",") if s]


@pytest.mark.skipif(not SPECS, reason="VM runs take minutes: set COREBPF_VM_TESTS=debian:5.10,debian:6.1,... to run")
@pytest.mark.parametrize("kernel", SPECS)
def test_compat_agrees_with_vm_loads(kernel: str) -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    label, release, real, error = run_loads([str(o) for o in OBJECTS], kernel)
    assert not error, error
    targets = find_targets([kernel])
    mismatches = []
    for obj in OBJECTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = ObjectSpec.from_file(obj)
        report = check_compat(spec, targets).kernels[0]
        assert report.error is None, report.error
        for name, verdict in report.verdicts.items():
            if (obj.name, name) in EXCLUDED:
                continue
            loaded = real[str(obj)].get(name, {})
            if bool(loaded.get("ok")) != verdict.ok:
                mismatches.append(f"{obj.name}/{name}: compat {verdict.text!r}, {label} ({release}): "
                                  f"{'loads' if loaded.get('ok') else loaded.get('error')}")
    assert mismatches == []


@pytest.mark.skipif(not SPECS, reason="VM runs take minutes: set COREBPF_VM_TESTS=debian:6.1,... to run")
def test_cli_vm_row() -> None:
    import json
    import subprocess
    import sys

    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    code = "import sys; from corebpf.cli.main import main; sys.argv[0] = 'corebpf'; main()"
    r = subprocess.run([sys.executable, "-c", code, "compat", str(CORPUS / "obj_fentry.bpf.o"), "--vm", SPECS[0],
                        "--json"], capture_output=True, text=True, timeout=1800,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    data = json.loads(r.stdout)
    names = [k["name"] for k in data["kernels"]]
    assert names[-1].endswith("(vm)") and len(names) == 2, names  # the BTF row is added for the VM's kernel
    static, vm = data["kernels"]
    assert vm["error"] is None
    for prog in data["programs"]:
        assert static["programs"][prog]["ok"] == vm["programs"][prog]["ok"]
    assert r.returncode == (0 if data["ok"] else 1)
