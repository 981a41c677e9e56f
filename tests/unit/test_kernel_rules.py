"""The matrix rule helper used by the kernel tests (tests/kernel/kernel_rules.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kernel"))
import kernel_rules  # noqa: E402


def test_unknown_entry_is_an_error_not_a_skip() -> None:
    with pytest.raises(AssertionError, match="no version"):
        kernel_rules.skip_if_older("helpers", "bpf_no_such_helper")


def test_skip_only_when_older(monkeypatch: pytest.MonkeyPatch) -> None:
    release = {"r": "5.10.0-30-amd64"}
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", release["r"], "", "x86_64")))
    with pytest.raises(pytest.skip.Exception, match=r"helper bpf_loop needs Linux 5.17\+, this is 5.10"):
        kernel_rules.skip_if_older("helpers", "bpf_loop")
    release["r"] = "6.1.0-1-amd64"
    kernel_rules.skip_if_older("helpers", "bpf_loop")  # no skip
    with pytest.raises(pytest.fail.Exception, match="missing on Linux 6.1"):
        kernel_rules.missing_is_expected("helpers", "bpf_loop", "probe says no")
