"""Every program loaded on this host right now (whoever loaded it): our listing of its translated
code equals bpftool's, and its bytes round-trip. Programs that vanish mid-test are skipped."""

from __future__ import annotations

import pytest

from corebpf._sys import ops
from corebpf.asm import Dialect, KernelSymbols, decode, dump_xlated, encode, read_xlated_by_id
from corebpf.errors import BPFNotFoundError

from corpus_util import bpftool, bpftool_dump_xlated, bpftool_version, corpus_objects, loaded_object


@pytest.mark.skipif(bpftool() is None, reason="bpftool is not installed")
def test_every_loaded_program_matches_bpftool():
    dialect = Dialect.for_bpftool(bpftool_version())
    # keep at least a few programs of our own loaded so the test can never pass vacuously
    with loaded_object(corpus_objects()[0]) as ours:
        compared = 0
        for prog_id in ops.iter_ids("prog"):
            try:
                prog = read_xlated_by_id(prog_id)
                # symbols read after the program exists, so its JITed functions are named
                listing = dump_xlated(prog, dialect=dialect, kallsyms=KernelSymbols.load())
                theirs = bpftool_dump_xlated(prog_id)
            except (BPFNotFoundError, RuntimeError):
                continue  # unloaded by its owner while we looked
            try:
                ops.get_fd_by_id("prog", prog_id).close()
            except BPFNotFoundError:
                continue  # gone before bpftool's read finished: the two reads may disagree
            assert encode(decode(prog.xlated)) == prog.xlated
            assert listing == theirs, f"program {prog_id} ({prog.name}) differs from bpftool"
            compared += 1
        assert compared >= len(ours)
