"""Synthetic producers: small programs, built with :mod:`corebpf.asm`, that write numbered records.

They exist so the readers can be tested and benchmarked without attaching anything: each is a
tc (``sched_cls``) program run with ``Program.test_run(data=PACKET, repeat=N)``. Every run takes a
sequence number from a counter map and writes one record whose first 8 bytes are that number (the
rest is zero). The counter map (:func:`counter_map`) is an array with one value: ``[0:8]`` is the
number of records attempted, ``[8:16]`` the number the kernel refused (ring full, no perf event
on this CPU...), then a ``struct bpf_spin_lock``. So ``attempted == received + failed`` for ring
buffers, and ``attempted == received + lost`` for perf buffers (where the kernel reports the same
failures as lost samples).

Why a spin lock: the sequence number must be unique and gap-free across producers running at once
on several CPUs (the overload tests), i.e. a fetch-and-add. The atomic fetch instructions
(``BPF_ADD | BPF_FETCH``) need Linux 5.12; ``bpf_spin_lock`` (5.1) around a plain read-increment
gives the same guarantee on every kernel with ring buffers (5.8), so the same producers run on the
whole matrix (5.10 included). The kernel refuses spin locks in socket filters and tracing programs,
hence tc programs. The failure count needs no old value: a plain atomic add (``BPF_XADD``).
"""

from __future__ import annotations

import struct
from typing import Any

from ..asm.builder import (
    FP, PendingJump, R0, R1, R2, R3, R4, R5, R6, R7, R8, assemble, atomic, call, exit_, jeq, jne, label, ld_func, ld_map_fd,
    ldx, mod64, mov32, mov64, st, stx, add64,
)
from ..asm.opcodes import AtomicOp, Size
from ..maps import Map
from ..programs import Program

PACKET = bytes(64)
"""Input for ``test_run`` (skb programs need at least an Ethernet header's worth of data)."""
BPF_F_CURRENT_CPU = 0xFFFFFFFF


COUNTERS_VALUE_SIZE = 24
_LOCK_OFFSET = 16


def counter_map() -> Map:
    """An array map with one value: (u64 records attempted, u64 records the kernel refused, the
    ``struct bpf_spin_lock`` the producers take their sequence numbers under, 4 bytes of padding)."""
    from ..btf.builder import BTFBuilder

    b = BTFBuilder()
    u32 = b.add_int("unsigned int", 4)
    u64 = b.add_int("unsigned long long", 8)
    lock = b.add_struct("bpf_spin_lock", 4, [("val", u32, 0)])
    value = b.add_struct("ev_counters", COUNTERS_VALUE_SIZE,
                         [("attempted", u64, 0), ("failed", u64, 64), ("lock", lock, 8 * _LOCK_OFFSET)])
    btf = b.load()
    try:  # the map keeps its own reference to the BTF object
        return Map.create("array", 4, COUNTERS_VALUE_SIZE, 1, name="ev_counters", btf=btf,
                          btf_key_type_id=u32, btf_value_type_id=value)
    finally:
        btf.close()


def read_counters(counters: Map) -> tuple[int, int]:
    """(attempted, failed) from a :func:`counter_map`."""
    raw = counters[0]
    return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:16], "little")


def _prologue(counters: Map) -> list[Any]:
    """r6 = ctx; r7 = &counters[0]; r8 = sequence number (old value of attempted, incremented)."""
    return [
        mov64(R6, R1),
        st(Size.W, FP, -4, 0),
        mov64(R2, FP), add64(R2, -4),
        ld_map_fd(R1, counters.fileno()),
        call("map_lookup_elem"),
        jeq(R0, 0, "out"),
        mov64(R7, R0),
        # r8 = attempted++ under the value's spin lock (see the module docstring: not ADD_FETCH)
        mov64(R1, R7), add64(R1, _LOCK_OFFSET), call("spin_lock"),
        ldx(Size.DW, R8, R7, 0),
        mov64(R1, R8), add64(R1, 1),
        stx(Size.DW, R7, 0, R1),
        mov64(R1, R7), add64(R1, _LOCK_OFFSET), call("spin_unlock"),
    ]


def _epilogue(fall_through: bool = True) -> list[Any]:
    """Success path (when the code before falls through), failure counting, and the common exit."""
    return [
        *([mov64(R0, 0), exit_()] if fall_through else []),
        label("fail"),
        mov64(R1, 1),
        atomic(AtomicOp.ADD, Size.DW, R7, 8, R1),
        label("out"),
        mov64(R0, 0), exit_(),
    ]


def _record_on_stack(size: int) -> tuple[list[Any], int]:
    """Instructions writing a zeroed record of ``size`` bytes with r8 in its first 8; its stack offset."""
    padded = (size + 7) & ~7
    base = -8 - padded
    insns: list[Any] = [st(Size.DW, FP, base + i, 0) for i in range(0, padded, 8)]
    insns.append(stx(Size.DW, FP, base, R8))
    return insns, base


def ringbuf_output_producer(ring: Map, counters: Map, record_size: int = 8, flags: int = 0) -> Program:
    """Each run: ``bpf_ringbuf_output(ring, &record, record_size, flags)``."""
    if record_size < 8:
        raise ValueError("records must hold at least the 8-byte sequence number")
    rec, base = _record_on_stack(record_size)
    code = [*_prologue(counters), *rec,
            ld_map_fd(R1, ring.fileno()), mov64(R2, FP), add64(R2, base), mov64(R3, record_size), mov64(R4, flags),
            call("ringbuf_output"),
            jne(R0, 0, "fail"),
            *_epilogue()]
    return Program.load(assemble(code), "sched_cls", name="ev_rb_output")


def ringbuf_reserve_producer(ring: Map, counters: Map, record_size: int = 8, flags: int = 0,
                             discard_every: int = 0) -> Program:
    """Each run: ``bpf_ringbuf_reserve`` + fill + ``submit`` (``discard`` when the sequence number is a
    multiple of ``discard_every``, if given)."""
    if record_size < 8 or record_size % 8:
        raise ValueError("record_size must be a multiple of 8, at least 8")
    fill = [st(Size.DW, R0, i, 0) for i in range(8, record_size, 8)]
    code = [*_prologue(counters),
            ld_map_fd(R1, ring.fileno()), mov64(R2, record_size), mov64(R3, 0),
            call("ringbuf_reserve"),
            jeq(R0, 0, "fail"),
            stx(Size.DW, R0, 0, R8), *fill,
            mov64(R1, R0), mov64(R2, flags)]
    if discard_every:
        code += [mov64(R3, R8), mod64(R3, discard_every), jeq(R3, 0, "discard")]
    code += [call("ringbuf_submit"), mov64(R0, 0), exit_()]
    if discard_every:
        code += [label("discard"), call("ringbuf_discard"), mov64(R0, 0), exit_()]
    code += _epilogue(fall_through=False)
    return Program.load(assemble(code), "sched_cls", name="ev_rb_reserve")


def perf_output_producer(perf_map: Map, counters: Map, record_size: int = 8) -> Program:
    """Each run: ``bpf_perf_event_output(ctx, perf_map, BPF_F_CURRENT_CPU, &record, record_size)``."""
    if record_size < 8:
        raise ValueError("records must hold at least the 8-byte sequence number")
    rec, base = _record_on_stack(record_size)
    code = [*_prologue(counters), *rec,
            mov64(R1, R6), ld_map_fd(R2, perf_map.fileno()), mov32(R3, -1),  # BPF_F_CURRENT_CPU, zero-extended
            mov64(R4, FP), add64(R4, base), mov64(R5, record_size),
            call("perf_event_output"),
            jne(R0, 0, "fail"),
            *_epilogue()]
    return Program.load(assemble(code), "sched_cls", name="ev_perf_output")


def user_ringbuf_consumer(user_ring: Map, totals: Map) -> tuple[Program, Any]:
    """A program draining ``user_ring`` with ``bpf_user_ringbuf_drain``: for each sample it adds 1 and
    the sample's first 8 bytes to ``totals[0]`` (a :func:`counter_map`: (samples, sum)). Its
    ``test_run`` return value is what the drain call returned (samples drained, or -errno).

    Returns (program, BTF) -- callbacks need func_info, hence BTF; close both when done."""
    from ..btf.builder import BTFBuilder

    b = BTFBuilder()
    long_t = b.add_int("long", 8, signed=True)
    main_proto = b.add_func_proto(long_t)
    main_f = b.add_func("drain_main", main_proto, 1)
    cb_proto = b.add_func_proto(long_t)
    cb_f = b.add_func("drain_cb", cb_proto, 0)
    btf = b.load()
    main = [
        ld_map_fd(R1, user_ring.fileno()), ld_func(R2, "cb"), mov64(R3, 0), mov64(R4, 0),
        call("user_ringbuf_drain"), exit_(),
    ]
    cb = [
        label("cb"),
        mov64(R3, R1),                        # the sample's dynptr
        st(Size.DW, FP, -8, 0),
        mov64(R1, FP), add64(R1, -8), mov64(R2, 8), mov64(R4, 0), mov64(R5, 0),
        call("dynptr_read"),                   # 8 bytes of the sample into fp-8
        jne(R0, 0, "cb_out"),
        st(Size.W, FP, -12, 0),
        mov64(R2, FP), add64(R2, -12),
        ld_map_fd(R1, totals.fileno()),
        call("map_lookup_elem"),
        jeq(R0, 0, "cb_out"),
        mov64(R1, 1),
        atomic(AtomicOp.ADD, Size.DW, R0, 0, R1),
        ldx(Size.DW, R1, FP, -8),
        atomic(AtomicOp.ADD, Size.DW, R0, 8, R1),
        label("cb_out"),
        mov64(R0, 0), exit_(),
    ]
    insns = assemble([*main, *cb])
    cb_index = sum(i.insn.slots if isinstance(i, PendingJump) else i.slots for i in main)
    func_info = struct.pack("<II", 0, main_f) + struct.pack("<II", cb_index, cb_f)
    try:
        prog = Program.load(insns, "sched_cls", name="ev_urb_drain", btf=btf, func_info=func_info)
    except BaseException:
        btf.close()
        raise
    return prog, btf


def run(prog: Program, repeat: int) -> None:
    """Run a producer ``repeat`` times (one BPF_PROG_TEST_RUN)."""
    prog.test_run(PACKET, repeat=repeat)


__all__ = ["PACKET", "BPF_F_CURRENT_CPU", "COUNTERS_VALUE_SIZE", "counter_map", "read_counters", "ringbuf_output_producer",
           "ringbuf_reserve_producer", "perf_output_producer", "user_ringbuf_consumer", "run"]
