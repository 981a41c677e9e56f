"""Feature probes against this kernel, and differentially against ``bpftool feature probe kernel``.

Intentional differences with bpftool 7.1 (libbpf 1.1), asserted below rather than hidden:

* ``tracing``: bpftool loads a tracing program without an attach target and takes any error but
  the verifier's "needs a target" as "type missing". Where fentry-style loads are refused with
  EPERM before verification (this machine), it reports ``tracing`` unavailable although tp_btf and
  iter programs of that type load and attach. corebpf tries each tracing variant with a real BTF
  target and reports the type supported when any variant loads (the variants are listed apart).
* helpers: since Linux 6.x the verifier says "program of this type cannot use helper"; libbpf 1.1
  only knows "invalid func"/"unknown func", so bpftool 7.1 lists *every* helper as available for
  every program type. corebpf's supported set must therefore be a subset of bpftool's, and every
  helper bpftool lists that corebpf rejects must have been rejected by the kernel with that message.
* helpers of the BTF-target types ``tracing``, ``struct_ops``, ``lsm`` and ``ext``: bpftool has no
  attach target for them and lists none ("Could not determine which helpers are available") even when
  it reports the type available (Debian 6.12); corebpf probes tracing, struct_ops and lsm with its
  real targets. ``ext`` helpers are not probed (an extension without a target program is refused
  before the helper lookup; it may call what the program it replaces may).
* types bpftool 7.1 does not know (newer than it: cgrp_storage, arena, netfilter...) are compared
  only where both have an answer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from corebpf import features
from corebpf._sys._generated import ProgType
from corebpf.analysis import kernel_versions as kv
from corebpf.features.helpers import _Prober
from corebpf.features.progs import variants

THIS_MACHINE = os.uname().release.startswith("6.18") and "-fc-" in os.uname().release
RUNNING = kv.KernelVersion.parse(os.uname().release)


def may_lack(table: str, name: str) -> str | None:
    """Why this kernel's version may lack ``name`` of kernel-versions table ``table`` (None: it must have it).

    The matrix rule: a feature the kernel's version must have but that probes as missing is a failure;
    one the version may lack is a skip with this reason.
    """
    need = kv.lookup(table, name).version
    return f"{name} needs Linux {need}+ (this is {RUNNING})" if need is not None and RUNNING < need else None


@pytest.fixture(scope="module")
def report() -> features.FeatureReport:
    features.clear_cache()
    return features.probe_all()


@pytest.fixture(scope="module")
def bpftool() -> dict:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (apt-get install bpftool)")
    out = subprocess.run(["bpftool", "feature", "probe", "kernel", "-j"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


MUST_LOAD = ["socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp", "perf_event", "cgroup_skb",
             "cgroup_sock", "raw_tracepoint", "cgroup_sock_addr", "sk_msg", "sk_skb", "sock_ops", "flow_dissector",
             "sk_lookup", "syscall"]
MUST_CREATE = ["hash", "array", "percpu_hash", "percpu_array", "lru_hash", "lpm_trie", "array_of_maps",
               "hash_of_maps", "prog_array", "perf_event_array", "stack_trace", "queue", "stack", "ringbuf",
               "user_ringbuf", "bloom_filter", "sk_storage", "task_storage", "inode_storage", "cgrp_storage",
               "devmap", "cpumap", "sockmap", "sockhash", "xskmap", "struct_ops", "arena"]


def test_loadable_program_types(report: features.FeatureReport) -> None:
    missing = [t for t in MUST_LOAD if not report.prog_types[t].supported]
    too_old = {t: why for t in missing if (why := may_lack("prog_types", t.upper()))}
    missing = [t for t in missing if t not in too_old]
    assert not missing, {t: report.prog_types[t].reason for t in missing}
    if too_old:
        pytest.skip("; ".join(too_old.values()))


def test_creatable_map_types(report: features.FeatureReport) -> None:
    missing = [t for t in MUST_CREATE if not report.map_types[t].supported]
    too_old = {t: why for t in missing if (why := may_lack("map_types", t.upper()))}
    missing = [t for t in missing if t not in too_old]
    assert not missing, {t: report.map_types[t].reason for t in missing}
    if too_old:
        pytest.skip("; ".join(too_old.values()))


def test_every_known_type_was_probed(report: features.FeatureReport) -> None:
    assert set(report.prog_types) == {t.name.lower() for t in ProgType if t != ProgType.UNSPEC}
    for r in list(report.prog_types.values()) + list(report.map_types.values()):
        assert r.source in ("probe", "/sys/kernel/btf/vmlinux")
        assert r.supported == (r.errno is None)


def test_tracing_variants_on_this_machine(report: features.FeatureReport) -> None:
    v = report.prog_variants["tracing"]
    assert v["tp_btf"].supported and v["iter"].supported
    if not THIS_MACHINE:
        pytest.skip("the fentry/LSM refusal is a property of this machine's kernel")
    for name in ("fentry", "fexit", "fmod_ret"):
        assert v[name].errno_name == "EPERM", v[name]
        assert report.attach[name].errno_name == "EPERM"
    assert report.prog_types["lsm"].errno_name == "EPERM"
    assert report.attach["lsm"].errno_name == "EPERM"
    assert "EPERM" in report.attach["fentry"].reason and "capabilit" in report.attach["fentry"].reason


def test_kprobe_attach_matches_kernel_evidence(report: features.FeatureReport) -> None:
    pmu = os.path.exists("/sys/bus/event_source/devices/kprobe/type")
    assert report.attach["kprobe_pmu"].supported == pmu
    if THIS_MACHINE:
        assert not pmu
        assert not report.attach["kprobe_pmu"].supported and not report.attach["kprobe_legacy"].supported
        assert not report.attach["kprobe_multi"].supported
    # tracepoints are the plan B and must work wherever tracefs is reachable
    for name in ("raw_tp", "tp_btf", "tracepoint", "perf_event", "uprobe_pmu"):
        assert report.attach[name].supported, report.attach[name]


def test_lockdown_refuses_probe_write_user(report: features.FeatureReport) -> None:
    from corebpf.node import read_lockdown

    mode = read_lockdown().mode
    if mode in (None, "none"):
        pytest.skip(f"lockdown is {mode!r}")
    r = report.attach["probe_write_user"]
    assert not r.supported and mode in r.reason and "cannot use helper" in r.detail


def test_helpers_sane(report: features.FeatureReport) -> None:
    xdp = report.helpers["xdp"]
    assert "xdp_adjust_head" in xdp.supported and "map_lookup_elem" in xdp.supported
    assert "probe_read" in xdp.unsupported  # tracing-only helper
    tp = report.helpers["tracepoint"]
    assert "get_current_pid_tgid" in tp.supported and "xdp_adjust_head" in tp.unsupported
    assert not report.helpers["lirc_mode2"].probed


def test_program_types_agree_with_bpftool(report: features.FeatureReport, bpftool: dict) -> None:
    theirs = {k.removeprefix("have_").removesuffix("_prog_type"): v for k, v in bpftool["program_types"].items()}
    differ = {t: (report.prog_types[t].supported, v) for t, v in theirs.items()
              if t in report.prog_types and report.prog_types[t].supported != v}
    # the one documented difference: tracing (see the module docstring)
    if "tracing" in differ:
        assert differ.pop("tracing") == (True, False)
        assert not report.prog_variants["tracing"]["fentry"].supported
    assert not differ, differ


def test_map_types_agree_with_bpftool(report: features.FeatureReport, bpftool: dict) -> None:
    theirs = {k.removeprefix("have_").removesuffix("_map_type"): v for k, v in bpftool["map_types"].items()}
    differ = {t: (report.map_types[t].supported, v) for t, v in theirs.items()
              if t in report.map_types and report.map_types[t].supported != v}
    assert not differ, differ
    assert len(set(theirs) & set(report.map_types)) >= 30


def test_misc_agrees_with_bpftool(report: features.FeatureReport, bpftool: dict) -> None:
    m = bpftool["misc"]
    assert report.misc["large_insn_limit"].supported == m["have_large_insn_limit"]
    assert report.misc["bounded_loops"].supported == m["have_bounded_loops"]
    assert report.misc["isa_v2"].supported == m["have_v2_isa_extension"]
    assert report.misc["isa_v3"].supported == m["have_v3_isa_extension"]


def test_helpers_agree_with_bpftool(report: features.FeatureReport, bpftool: dict) -> None:
    compared = 0
    known_to_bpftool = {n.removeprefix("bpf_") for names in bpftool["helpers"].values() for n in names}
    for key, names in bpftool["helpers"].items():
        pt = key.removesuffix("_available_helpers")
        if pt not in report.helpers or not report.helpers[pt].probed:
            assert not names, (pt, len(names))  # bpftool: type not loadable either
            continue
        if pt in ("tracing", "struct_ops", "lsm") and not names:
            # documented: bpftool cannot load these without a target, so it lists no helpers for them
            assert report.helpers[pt].supported
            continue
        ours = set(report.helpers[pt].supported) & known_to_bpftool  # bpftool 7.1 predates the newest helpers
        theirs = {n.removeprefix("bpf_") for n in names}
        assert ours <= theirs | set(report.helpers[pt].skipped), (pt, sorted(ours - theirs))
        only_theirs = theirs - ours
        # every helper bpftool lists but we reject must have been refused by the kernel in words
        bad = {n: report.helpers[pt].unsupported.get(n) for n in only_theirs
               if "cannot use helper" not in (report.helpers[pt].unsupported.get(n) or "")
               and "unknown func" not in (report.helpers[pt].unsupported.get(n) or "")}
        assert not bad, (pt, bad)
        compared += 1
    assert compared >= 25


def test_unsupported_helper_really_fails_and_supported_is_not_rejected(report: features.FeatureReport) -> None:
    # re-probe a sample independently of the report: the verdicts must be stable
    v = variants(ProgType.KPROBE)[0]
    p = _Prober(v)
    from corebpf._sys._generated import HelperId

    for name in ("get_current_pid_tgid", "ktime_get_ns", "ringbuf_output"):
        assert p.probe(HelperId[name].value)[0] is True
        assert name in report.helpers["kprobe"].supported
    # the verifier's words for "not for this program type" changed in 6.10 (kernel_versions.json)
    words = "unknown func" if may_lack("features", "verifier_msg_cannot_use_helper") else "cannot use helper"
    for name in ("xdp_adjust_head", "skb_store_bytes"):
        good, why = p.probe(HelperId[name].value)
        assert good is False and words in why, why
        assert name in report.helpers["kprobe"].unsupported


def test_cached_per_process(report: features.FeatureReport) -> None:
    assert features.probe_all() is report
    assert features.prog_type("xdp") is not None and features.prog_type("xdp").supported
    assert features.helper("xdp", "bpf_xdp_adjust_head") is True
    assert features.attach_method("tp_btf").supported
    with pytest.raises(KeyError):
        features.attach_method("no_such_method")


def test_disk_cache_round_trip(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    features.clear_cache()
    first = features.probe_all(use_disk_cache=True)
    assert first.from_cache is None
    files = list((tmp_path / "corebpf").glob("features-*.json"))
    assert len(files) == 1
    features.clear_cache()
    second = features.probe_all(use_disk_cache=True)
    assert second.from_cache == str(files[0])
    assert {k: v.supported for k, v in second.prog_types.items()} == {k: v.supported for k, v in first.prog_types.items()}
    assert second.helpers["xdp"].supported == first.helpers["xdp"].supported
    features.clear_cache()


def test_probes_leave_no_objects_behind() -> None:
    from corebpf._sys.ops import iter_ids

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    features.clear_cache()
    before = fds()
    features.probe_all()
    assert fds() == before
    mine = [d for d in os.listdir("/sys/fs/cgroup/unified") if d.startswith("corebpf-probe-")] \
        if os.path.isdir("/sys/fs/cgroup/unified") else []
    assert not mine
    assert isinstance(iter_ids("link"), list)


def test_struct_ops_link_leaves_nothing_registered(report: features.FeatureReport) -> None:
    r = report.attach["struct_ops_link"]
    if not r.supported and (why := may_lack("features", "struct_ops_link")):
        pytest.skip(f"{why}: {r.reason}")
    assert r.supported, r
    with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
        assert f"cbpf{os.getpid() % 10**8}" not in f.read().split()
