"""What this kernel really supports, found by trying: tiny program loads, map creates and attaches.

Nothing is inferred from the kernel version. Results are cached per process (and on disk when
asked, keyed by kernel release, boot id and the caller's privileges).

    >>> from corebpf import features
    >>> features.prog_type("xdp").supported
    True
    >>> features.attach_method("fentry").errno_name       # on this machine
    'EPERM'
    >>> report = features.probe_all()                      # everything, ~0.3 s
    >>> report.helpers["xdp"].supported[:3]
    ('map_lookup_elem', 'map_update_elem', 'map_delete_elem')
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .._sys._generated import HelperId, MapType, ProgType
from .._sys.syscall import raise_memlock_limit
from . import cache as _cache
from ._btfids import register as _register_btf_targets, vmlinux_types
from .attach import ATTACH_PROBES, BTF_TARGETS, probe_attach
from .helpers import SIDE_EFFECT_HELPERS, HelperSupport, helper_names, not_probed, probe_helpers
from .maps import probe_map_type, type_name as map_type_name
from .misc import probe_misc
from .probes import ProbeResult
from .progs import ProgTypeResult, _SPECIAL, probe_prog_type

_lock = threading.Lock()
_prog_cache: dict[str, ProgTypeResult] = {}
_map_cache: dict[str, ProbeResult] = {}
_attach_cache: dict[str, ProbeResult] = {}
_helper_cache: dict[str, HelperSupport] = {}
_report: Optional["FeatureReport"] = None


@dataclass(frozen=True)
class FeatureReport:
    """Every probe's result.

    ``prog_types``/``map_types``/``attach``/``misc`` map names to :class:`ProbeResult`;
    ``prog_variants`` the variants tried per program type (tracing: tp_btf, fentry...);
    ``helpers`` a :class:`HelperSupport` per program type. ``duration`` is the probing wall time
    in seconds; ``from_cache`` names the cache file when the report was read from disk.
    """

    prog_types: dict[str, ProbeResult]
    prog_variants: dict[str, dict[str, ProbeResult]]
    map_types: dict[str, ProbeResult]
    helpers: dict[str, HelperSupport]
    attach: dict[str, ProbeResult]
    misc: dict[str, ProbeResult]
    duration: float = 0.0
    from_cache: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"prog_types": {k: v.to_dict() for k, v in self.prog_types.items()},
                "prog_variants": {k: {n: r.to_dict() for n, r in v.items()} for k, v in self.prog_variants.items()},
                "map_types": {k: v.to_dict() for k, v in self.map_types.items()},
                "helpers": {k: v.to_dict() for k, v in self.helpers.items()},
                "attach": {k: v.to_dict() for k, v in self.attach.items()},
                "misc": {k: v.to_dict() for k, v in self.misc.items()},
                "duration": self.duration, "from_cache": self.from_cache}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureReport":
        """Rebuild a report from :meth:`to_dict` output (used by the disk cache)."""
        def pr(x: dict[str, Any]) -> ProbeResult:
            return ProbeResult(x["name"], x["supported"], x["errno"], x["reason"], x["source"], x["detail"])

        def hs(x: dict[str, Any]) -> HelperSupport:
            return HelperSupport(x["prog_type"], tuple(x["supported"]), {n: "" for n in x["unsupported"]},
                                 tuple(x["skipped"]), x["probed"], x["reason"])

        return cls({k: pr(v) for k, v in d["prog_types"].items()},
                   {k: {n: pr(r) for n, r in v.items()} for k, v in d["prog_variants"].items()},
                   {k: pr(v) for k, v in d["map_types"].items()}, {k: hs(v) for k, v in d["helpers"].items()},
                   {k: pr(v) for k, v in d["attach"].items()}, {k: pr(v) for k, v in d["misc"].items()},
                   d.get("duration", 0.0))

    def to_wire(self) -> tuple[Any, ...]:
        """Plain tuples and dicts for :mod:`marshal` (what :mod:`.background` sends); nothing is lost."""
        def pr(r: ProbeResult) -> tuple[Any, ...]:
            return (r.name, r.supported, r.errno, r.reason, r.source, r.detail)

        return ({k: pr(v) for k, v in self.prog_types.items()},
                {k: {n: pr(r) for n, r in v.items()} for k, v in self.prog_variants.items()},
                {k: pr(v) for k, v in self.map_types.items()},
                {k: (h.prog_type, h.supported, h.unsupported, h.skipped, h.probed, h.reason)
                 for k, h in self.helpers.items()},
                {k: pr(v) for k, v in self.attach.items()}, {k: pr(v) for k, v in self.misc.items()},
                self.duration, self.from_cache)

    @classmethod
    def from_wire(cls, w: tuple[Any, ...]) -> "FeatureReport":
        """The report :meth:`to_wire` described."""
        progs, variants, maps, helpers, attach, misc, duration, from_cache = w
        return cls({k: ProbeResult(*v) for k, v in progs.items()},
                   {k: {n: ProbeResult(*r) for n, r in v.items()} for k, v in variants.items()},
                   {k: ProbeResult(*v) for k, v in maps.items()},
                   {k: HelperSupport(*h) for k, h in helpers.items()},
                   {k: ProbeResult(*v) for k, v in attach.items()}, {k: ProbeResult(*v) for k, v in misc.items()},
                   duration, from_cache)


def _all_btf_targets() -> list[tuple[str, int]]:
    from ._btfids import KIND_STRUCT

    targets = [v.btf_target for vs in _SPECIAL.values() for v in vs if v.btf_target]
    return list(dict.fromkeys(targets + BTF_TARGETS + [("bpf_struct_ops_tcp_congestion_ops", KIND_STRUCT)]))


_register_btf_targets(_all_btf_targets())


def _prog_result(name: str) -> ProgTypeResult:
    key = name.lower()
    with _lock:
        if key in _prog_cache:
            return _prog_cache[key]
    r = probe_prog_type(ProgType[key.upper()])
    with _lock:
        _prog_cache[key] = r
    return r


def prog_type(name: str) -> ProbeResult:
    """Whether program type ``name`` (``"xdp"``, ``"tracing"``...) loads here (cached)."""
    return _prog_result(name).result


def map_type(name: str) -> ProbeResult:
    """Whether map type ``name`` (``"ringbuf"``...) can be created here (cached)."""
    key = name.lower()
    with _lock:
        if key in _map_cache:
            return _map_cache[key]
    r = probe_map_type(MapType[key.upper()])
    with _lock:
        _map_cache[key] = r
    return r


def attach_method(name: str) -> ProbeResult:
    """Whether attach method ``name`` works here (a key of :data:`ATTACH_METHODS`; cached)."""
    if name not in ATTACH_PROBES:
        raise KeyError(f"unknown attach method {name!r}; known: {', '.join(ATTACH_PROBES)}")
    with _lock:
        if name in _attach_cache:
            return _attach_cache[name]
    r = probe_attach(name)
    with _lock:
        _attach_cache[name] = r
    return r


def helper_support(prog_type_name: str) -> HelperSupport:
    """The helpers program type ``prog_type_name`` may call here (cached)."""
    key = prog_type_name.lower()
    with _lock:
        if key in _helper_cache:
            return _helper_cache[key]
    pt = _prog_result(key)
    if pt.loadable_as is None:
        r = not_probed(key, f"program type does not load: {pt.result.reason}")
    elif pt.loadable_as.prog_type == ProgType.EXT:
        # an extension without a target program is refused ("needs btf_id") before the verifier looks
        # at the call, so every helper would look accepted; it may call what the program it replaces may
        r = not_probed(key, "extensions use the helpers of the program they replace; probe that program type")
    else:
        r = probe_helpers(key, pt.loadable_as)
    with _lock:
        _helper_cache[key] = r
    return r


# program types whose helper probes take longest (tracing loads against a BTF target): started first
_SLOW_HELPER_TYPES = frozenset({"tracing", "lsm", "ext", "struct_ops"})
# attach probes that wait longest in the kernel (measured here: uprobe registration and its removal
# ~100 ms, a tracepoint perf event's close ~70 ms, uprobe.multi ~40 ms, tcx/XDP ~20-25 ms): started
# first, so the last of them does not begin when the others are done
_SLOW_ATTACH = ("uprobe_pmu", "tracepoint", "uprobe_multi", "tcx", "xdp_link", "struct_ops_link")


def _prog_and_helpers(name: str) -> tuple[ProgTypeResult, HelperSupport]:
    """One pool task of probe_all: the program type, then its helpers (which need it)."""
    return _prog_result(name), helper_support(name)


def helper(prog_type_name: str, helper_name: str) -> bool:
    """Whether ``helper_name`` (``"ringbuf_output"`` or ``"bpf_ringbuf_output"``) works in that program type."""
    name = helper_name.removeprefix("bpf_")
    HelperId[name]  # KeyError for unknown names
    return name in helper_support(prog_type_name).supported


ATTACH_METHODS: tuple[str, ...] = tuple(ATTACH_PROBES)


class _Done:
    """The outcome of one task: :meth:`result` waits for it."""

    __slots__ = ("value", "error", "ready")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self.ready = threading.Event()

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through result()
            self.error = exc
        finally:
            self.ready.set()

    def result(self) -> Any:
        """The task's return value (waits for it), or its exception raised again."""
        self.ready.wait()
        if self.error is not None:
            raise self.error
        return self.value


class _Inline:
    """An executor that runs each task at once in the calling thread (the serial mode of probe_all)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Done:
        done = _Done()
        done.run(fn, args)
        return done

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _Threads:
    """A minimal thread pool: up to ``workers`` threads take submitted tasks in order. Plain
    :mod:`threading` instead of :mod:`concurrent.futures`, whose import (logging, queue, traceback...)
    cost a cold ``corebpf doctor`` ~10 ms for nothing this needs."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.tasks: list[tuple[_Done, Callable[..., Any], tuple[Any, ...]]] = []
        self.lock = threading.Lock()
        self.running = 0
        self.threads: list[threading.Thread] = []

    def _work(self) -> None:
        while True:
            with self.lock:
                if not self.tasks:
                    self.running -= 1  # under the lock: submit() then starts a new worker if needed
                    return
                done, fn, args = self.tasks.pop(0)
            done.run(fn, args)

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Done:
        done = _Done()
        with self.lock:
            self.tasks.append((done, fn, args))
            start = self.running < self.workers
            if start:
                self.running += 1
        if start:
            t = threading.Thread(target=self._work, daemon=True)
            t.start()
            self.threads.append(t)
        return done

    def __enter__(self) -> "_Threads":
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self.threads:
            t.join()


def _helper_workers() -> int:
    """Threads for the helper probes: one per CPU plus one. A helper probe is not all CPU: the load
    also waits in the kernel, so threads overlap those waits even where the CPUs are busy with other
    work (measured on 2 busy CPUs, load average 3-4: 3 threads took 360-480 ms where 1 took 450-580,
    for about the same CPU time; pinned to one CPU, 2-3 threads still beat 1 by 1.7x)."""
    return (os.cpu_count() or 1) + 1


def probe_all(*, use_disk_cache: bool = False, with_helpers: bool = True, threads: Optional[int] = None) -> FeatureReport:
    """Run every probe (program types, map types, helpers per loadable type, attach methods, ISA).

    Attach probes, which mostly wait in the kernel (RCU grace periods), run on a few threads so they
    overlap the rest. Helper probes run on a pool of ``threads`` (default: CPUs + 1); ``threads=1``
    runs everything in the calling thread. With ``use_disk_cache``, a report from this boot, user and
    privilege set is reused.
    """
    global _report
    if _report is not None and (_report.helpers or not with_helpers):
        return _report
    key = _cache.cache_key() if use_disk_cache else ""
    if use_disk_cache:
        cached = _cache.load(key)
        if cached is not None:
            rep = FeatureReport.from_dict(cached)
            return FeatureReport(rep.prog_types, rep.prog_variants, rep.map_types, rep.helpers, rep.attach,
                                 rep.misc, rep.duration, os.path.join(_cache.cache_dir(), f"features-{key}.json"))
    report = _probe(_prog_type_names(), rest=True, with_helpers=with_helpers, waiters=1 if threads == 1 else 4,
                    helper_threads=threads or _helper_workers())
    _report = report
    if use_disk_cache:
        _cache.store(key, report.to_dict())
    return report


def _prog_type_names() -> list[str]:
    return [t.name.lower() for t in ProgType if t != ProgType.UNSPEC]


def _probe(names: list[str], *, rest: bool, with_helpers: bool, waiters: int, helper_threads: int) -> FeatureReport:
    """The probes of :func:`probe_all`: program types ``names`` with their helpers and, with ``rest``,
    the attach, map and instruction-set probes (without: those sections stay empty). Attach probes
    run on ``waiters`` threads, helper probes on ``helper_threads`` (1: in the calling thread)."""
    start = time.perf_counter()
    # Kernels before 5.11 charge map/program memory to RLIMIT_MEMLOCK (often 64 KiB): the probes use
    # bpf_raw (no EPERM retry), and concurrent ones share that budget, so lift it first or random map
    # types probe as "permission denied" (seen on Debian 5.10).
    raise_memlock_limit()
    # The probes read host facts from these modules; import them here, once, before any probe thread
    # exists: concurrent first imports of modules that import each other can fail with _DeadlockError
    # (seen once in a 6.1 guest, reported as "the feature probes failed").
    from ..node import caps, kconfig, kernel, lockdown, mounts, tracing  # noqa: F401
    # attach probes mostly sleep in the kernel (RCU grace periods, uprobe registration): a few
    # threads run them so they overlap everything else; helper probes (mostly kernel time) get a pool
    with (_Inline() if waiters == 1 else _Threads(waiters)) as wait_pool, \
            (_Inline() if helper_threads == 1 else _Threads(helper_threads)) as pool:
        order = [n for n in _SLOW_ATTACH if n in ATTACH_PROBES] + [n for n in ATTACH_PROBES if n not in _SLOW_ATTACH]
        attach_f = {n: wait_pool.submit(attach_method, n) for n in order} if rest else {}
        vmlinux_types(_all_btf_targets())  # one BTF pass for every probe that needs a target
        if with_helpers:
            # each pool task probes its program type then that type's helpers, so helper probes start
            # at once instead of after every program type; the slowest (tracing, BTF targets) go first
            order = sorted(names, key=lambda n: n not in _SLOW_HELPER_TYPES)
            pair_f = {n: pool.submit(_prog_and_helpers, n) for n in order}
        else:
            pair_f = {n: _Inline().submit(lambda n: (_prog_result(n), None), n) for n in names}
        maps = {map_type_name(t): map_type(map_type_name(t)) for t in MapType if t != MapType.UNSPEC} if rest else {}
        misc = probe_misc() if rest else {}
        pairs = {n: pair_f[n].result() for n in names}
        progs = {n: pairs[n][0] for n in names}
        return FeatureReport({n: r.result for n, r in progs.items()}, {n: r.variants for n, r in progs.items()},
                             maps, {n: pairs[n][1] for n in names} if with_helpers else {},
                             {n: attach_f[n].result() for n in ATTACH_PROBES} if rest else {}, misc,
                             time.perf_counter() - start)


# relative cost of a program type's probes (its helpers dominate): tracing loads against a BTF target
_TYPE_COST = {"tracing": 4.0, "struct_ops": 1.2}
_REST_COST = 8.0  # the attach, map and instruction-set probes, in the same units


def split_prog_types(parts: int) -> list[list[str]]:
    """Program type names in ``parts`` groups of about equal probing cost, for probing in ``parts``
    processes (see :mod:`.background`); the first group also takes the attach, map and
    instruction-set probes, so it gets fewer types."""
    groups: list[list[str]] = [[] for _ in range(max(1, parts))]
    load = [_REST_COST] + [0.0] * (len(groups) - 1)
    for name in sorted(_prog_type_names(), key=lambda n: -_TYPE_COST.get(n, 1.0)):
        i = load.index(min(load))
        groups[i].append(name)
        load[i] += _TYPE_COST.get(name, 1.0)
    return groups


def probe_part(names: list[str], *, rest: bool) -> FeatureReport:
    """One process's share of a split :func:`probe_all`: program types ``names`` (from
    :func:`split_prog_types`), and the rest of the probes when ``rest``. Helper probes run in the
    calling thread: the processes are the parallelism, and threads would only add GIL hand-offs
    (measured ~100-150 ms of CPU over a full probe)."""
    return _probe(names, rest=rest, with_helpers=True, waiters=4, helper_threads=1)


def merge_parts(parts: list[FeatureReport]) -> FeatureReport:
    """The report of a whole :func:`probe_all` from the reports of its :func:`probe_part` shares
    (sections in probe_all's order; duration: the longest share)."""
    names = _prog_type_names()

    def pick(section: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for part in parts:
            found.update(getattr(part, section))
        return {n: found[n] for n in names if n in found}

    rest = next((p for p in parts if p.attach), parts[0])
    return FeatureReport(pick("prog_types"), pick("prog_variants"), rest.map_types, pick("helpers"), rest.attach,
                         rest.misc, max(p.duration for p in parts))


def clear_cache() -> None:
    """Forget every in-process result (the next call probes again)."""
    global _report
    with _lock:
        _prog_cache.clear()
        _map_cache.clear()
        _attach_cache.clear()
        _helper_cache.clear()
        _report = None


__all__ = ["FeatureReport", "ProbeResult", "HelperSupport", "ProgTypeResult", "ATTACH_METHODS",
           "SIDE_EFFECT_HELPERS", "probe_all", "prog_type", "map_type", "attach_method", "helper_support", "helper",
           "helper_names", "clear_cache"]
