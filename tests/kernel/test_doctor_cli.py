"""``corebpf doctor`` end to end: the real command, its JSON against the shipped schema, exit codes,
and runs without capabilities (no traceback, the missing capability named, exit code 1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from corebpf.cli.doctor import schema
from kernel_rules import older_than

CLI = [str(Path(sys.executable).with_name("corebpf"))]
THIS_MACHINE = os.uname().release.startswith("6.18") and "-fc-" in os.uname().release
NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--ambient-caps=-all", "--reuid=65534",
           "--regid=65534", "--clear-groups"]


def run(*args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), *CLI, "doctor", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def doc() -> dict:
    out = run("--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_schema_is_valid_draft_2020_12() -> None:
    s = schema()
    assert s["$schema"].endswith("2020-12/schema")
    jsonschema.Draft202012Validator.check_schema(s)


def test_json_validates(doc: dict) -> None:
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(doc)


def test_schema_rejects_a_broken_document(doc: dict) -> None:
    broken = json.loads(json.dumps(doc))
    broken["verdict"]["status"] = "fine"
    del broken["features"]["attach"]["fentry"]["errno"]
    errors = list(jsonschema.Draft202012Validator(schema()).iter_errors(broken))
    assert len(errors) >= 2


def test_verdict_and_findings(doc: dict) -> None:
    ids = {f["id"] for f in doc["verdict"]["findings"]}
    if THIS_MACHINE:
        assert doc["verdict"]["status"] == "ready_with_limitations"
        assert {"lockdown", "fentry_refused", "lsm_refused", "no_kprobes"} <= ids
        plan = next(f for f in doc["verdict"]["findings"] if f["id"] == "no_kprobes")["plan_b"]
        assert "tp_btf" in plan and "raw_tp" in plan and "tracepoint" in plan
        fentry = next(f for f in doc["verdict"]["findings"] if f["id"] == "fentry_refused")
        assert "EPERM" in fentry["title"] and "tp_btf" in fentry["plan_b"]
    assert doc["verdict"]["status"] != "not_ready"


def test_reports_lockdown_fentry_kprobes(doc: dict) -> None:
    lock = doc["node"]["lockdown"]
    with open(lock["source"]) as f:
        assert f"[{lock['mode']}]" in f.read()
    feats = doc["features"]
    if THIS_MACHINE:
        assert lock["mode"] == "integrity"
        for name in ("fentry", "fexit", "lsm"):
            assert feats["attach"][name]["errno_name"] == "EPERM"
        assert feats["prog_types"]["lsm"]["errno_name"] == "EPERM"
        for name in ("kprobe_pmu", "kprobe_legacy", "kprobe_multi"):
            assert not feats["attach"][name]["supported"]
        assert not doc["node"]["tracing"]["kprobes_possible"]


def test_loadable_types_reported(doc: dict) -> None:
    p = doc["features"]["prog_types"]
    for t in ("socket_filter", "xdp", "sched_cls", "tracepoint", "raw_tracepoint", "perf_event", "cgroup_skb"):
        assert p[t]["supported"], p[t]
    m = doc["features"]["map_types"]
    for t in ("hash", "array", "ringbuf", "lru_hash", "percpu_array"):
        assert m[t]["supported"], m[t]
    xdp = doc["features"]["helpers"]["xdp"]
    expected = {h for h in XDP_HELPERS if not older_than("helpers", "bpf_" + h)}  # by this kernel's version
    assert expected <= set(xdp["supported"]), sorted(expected - set(xdp["supported"]))
    assert xdp["counts"]["supported"] == len(xdp["supported"]) >= len(expected)


# Helpers XDP programs may call, each needed wherever its release (kernel_versions.json) is reached.
XDP_HELPERS = ["map_lookup_elem", "map_update_elem", "map_delete_elem", "ktime_get_ns", "get_prandom_u32",
               "get_smp_processor_id", "tail_call", "perf_event_output", "csum_diff", "xdp_adjust_head",
               "redirect", "redirect_map", "xdp_adjust_meta", "xdp_adjust_tail", "fib_lookup", "sk_lookup_tcp",
               "sk_lookup_udp", "sk_release", "ringbuf_output", "ringbuf_reserve", "ringbuf_submit",
               "ktime_get_boot_ns", "check_mtu", "loop", "xdp_get_buff_len", "xdp_load_bytes", "xdp_store_bytes",
               "ktime_get_tai_ns"]


def test_inventory_section_sees_our_program(tmp_path: Path) -> None:
    from corebpf._sys import _generated as g
    from corebpf.features.probes import ProgLoader, close

    fd, _ = ProgLoader().load(g.ProgType.SOCKET_FILTER, bytes.fromhex("b7000000000000009500000000000000"))
    assert fd >= 0
    try:
        out = run("--json", "--no-probe")
        doc = json.loads(out.stdout)
        inv = doc["inventory"]
        assert inv["available"], inv["error"]
        assert inv["programs"]["by_type"].get("SOCKET_FILTER", 0) >= 1
        owners = {o["pid"]: o for o in inv["top_owners"]}
        if len(owners) < 5:  # only the top 5 are listed: other processes may outnumber us
            assert owners[os.getpid()]["programs"] >= 1
    finally:
        close(fd)


def test_human_output(doc: dict) -> None:
    out = run()
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for section in ("Kernel", "BTF", "JIT", "Security", "Filesystems", "Environment", "Program types",
                    "Map types", "Attach methods", "Helpers", "What runs here"):
        assert section in text, section
    assert text.splitlines()[0].startswith(("ready", "not ready"))
    if THIS_MACHINE:
        assert "integrity" in text and "EPERM" in text and "no kprobe support" in text and "plan B" in text
    helpers = run("--helpers", "--no-inventory")
    assert "xdp_adjust_head" in helpers.stdout


def test_schema_option() -> None:
    out = run("--schema")
    assert out.returncode == 0 and json.loads(out.stdout)["title"] == "corebpf doctor --json"


@pytest.mark.parametrize("as_json", [False, True])
def test_without_capabilities(as_json: bool) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    out = run(*(["--json"] if as_json else []), prefix=NO_CAPS)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stdout + out.stderr
    if as_json:
        doc = json.loads(out.stdout)
        jsonschema.Draft202012Validator(schema()).validate(doc)
        assert doc["verdict"]["status"] == "not_ready"
        assert doc["bpf_syscall"]["usable"] is False and doc["bpf_syscall"]["errno"] == 1
        assert "CAP_BPF" in doc["bpf_syscall"]["missing_capabilities"]
        assert doc["features"] is None
    else:
        first = out.stdout.splitlines()[0]
        assert first.startswith("not ready")
        assert "missing CAP_BPF" in out.stdout and "CAP_SYS_ADMIN" in out.stdout


def test_root_without_bpf_capabilities() -> None:
    if shutil.which("capsh") is None:
        pytest.skip("capsh (libcap2-bin) is not installed")
    cmd = " ".join([*CLI, "doctor", "--json", "--no-mount"])
    out = subprocess.run(["capsh", "--drop=cap_bpf,cap_sys_admin,cap_perfmon", "--", "-c", cmd],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    assert doc["euid"] == 0
    assert set(doc["bpf_syscall"]["missing_capabilities"]) >= {"CAP_BPF", "CAP_PERFMON"}
    assert "CAP_BPF" in doc["bpf_syscall"]["reason"]


def test_unprivileged_without_special_filesystems() -> None:
    """Nothing mounted, nothing allowed: still a clean report (private mount namespace, host untouched)."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("unshare/setpriv (util-linux) are not installed")
    script = ("umount /sys/kernel/security 2>/dev/null; umount /sys/kernel/tracing 2>/dev/null; "
              "umount /sys/fs/bpf 2>/dev/null; exec " + " ".join([*NO_CAPS, *CLI, "doctor", "--json"]))
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    doc = json.loads(out.stdout)
    jsonschema.Draft202012Validator(schema()).validate(doc)
    assert doc["node"]["lockdown"]["mode"] is None and "CAP_SYS_ADMIN" in doc["node"]["lockdown"]["error"]
    assert not doc["node"]["mounts"]["bpffs"]["mounted"] and doc["node"]["mounts"]["bpffs"]["mountable"] is False
    assert doc["mounted_by_corebpf"] == {}


def test_probe_failure_becomes_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    from corebpf import features
    from corebpf.node.readiness import build_report

    def boom(**_: object) -> None:
        raise RuntimeError("synthetic probe failure")

    monkeypatch.setattr(features, "probe_all", boom)
    doc = build_report(inventory=False)
    assert doc["features"] is None and "synthetic" in doc["features_error"]
    assert "probes_failed" in {f["id"] for f in doc["verdict"]["findings"]}
    assert doc["verdict"]["status"] != "ready"
    jsonschema.Draft202012Validator(schema()).validate(json.loads(json.dumps(doc)))


def test_inventory_counts_from_ids_match_the_snapshot() -> None:
    """doctor's light count (ids listed first, no records built) says what the full snapshot says."""
    from corebpf._sys import MapType, ProgType, ops
    from corebpf.features.probes import ProgLoader, close
    from corebpf.node.readiness import inventory_summary, object_ids

    prog, _ = ProgLoader().load(ProgType.RAW_TRACEPOINT, bytes.fromhex("b7000000000000009500000000000000"))
    assert prog >= 0
    try:
        with ops.map_create(MapType.HASH, 4, 4, 1, name="doctor_cnt") as m, ops.raw_tracepoint_open("sys_enter", prog) as lk:
            ids = object_ids()
            assert ids is not None
            light, full = inventory_summary(ids=ids), inventory_summary()
            assert light["available"] and full["available"]
            assert {k: light[k] for k in ("programs", "maps", "links", "btfs")} == \
                {k: full[k] for k in ("programs", "maps", "links", "btfs")} or \
                object_ids() != ids  # (another process loaded or unloaded something meanwhile)
            assert light["programs"]["by_type"].get("RAW_TRACEPOINT", 0) >= 1
            assert light["links"]["by_type"].get("RAW_TRACEPOINT", 0) >= 1 and int(m) >= 0 and int(lk) >= 0
            mine = {o["pid"]: o for o in light["top_owners"]}.get(os.getpid())
            if len(light["top_owners"]) < 5:
                assert mine is not None and mine["programs"] >= 1 and mine["maps"] >= 1 and mine["links"] >= 1
    finally:
        close(prog)
