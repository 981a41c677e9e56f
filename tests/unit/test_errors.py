"""The error hierarchy: typed by errno, readable, picklable, and hints that name the way out."""

import errno
import pickle

import pytest

from corebpf._sys import hints
from corebpf.errors import (
    ENOTSUPP,
    BPFError,
    BPFNotSupportedError,
    BPFPermissionError,
    CoreBPFError,
    VerifierError,
    error_class,
)


@pytest.mark.parametrize("err, cls", [(errno.EPERM, BPFPermissionError), (ENOTSUPP, BPFNotSupportedError),
                                      (errno.EOPNOTSUPP, BPFNotSupportedError), (errno.EXDEV, BPFError)])
def test_error_class_by_errno(err, cls):
    assert error_class(err) is cls


def test_message_names_command_errno_and_hint():
    exc = error_class(errno.EPERM)(errno.EPERM, "BPF_PROG_LOAD", "missing capability CAP_BPF", "prog 'x'")
    assert isinstance(exc, (CoreBPFError, OSError, PermissionError))
    assert exc.errno == errno.EPERM
    assert str(exc) == "BPF_PROG_LOAD: prog 'x': Operation not permitted (EPERM); missing capability CAP_BPF"
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is BPFPermissionError and str(again) == str(exc)


def test_enotsupp_is_named():
    assert "ENOTSUPP" in str(BPFNotSupportedError(ENOTSUPP, "BPF_LINK_CREATE"))


def test_verifier_error_keeps_summary_and_log():
    exc = VerifierError(errno.EACCES, "BPF_PROG_LOAD", "0: (79) r0 = *(u64 *)(r1 +0): R1 invalid mem access", "full\nlog")
    assert "R1 invalid mem access" in str(exc) and exc.log == "full\nlog"
    assert pickle.loads(pickle.dumps(exc)).log == "full\nlog"


def test_permission_hint_names_missing_capabilities(monkeypatch):
    monkeypatch.setattr(hints, "effective_capabilities", lambda: 0)
    text = hints.hint_for(errno.EPERM, "BPF_PROG_LOAD", "TRACEPOINT")
    assert "CAP_BPF" in text and "CAP_PERFMON" in text


def test_permission_hint_with_capabilities_points_at_policy(monkeypatch):
    monkeypatch.setattr(hints, "effective_capabilities", lambda: (1 << 41) - 1)
    monkeypatch.setattr(hints, "lockdown_mode", lambda: "integrity")
    text = hints.hint_for(errno.EPERM, "BPF_PROG_LOAD", "TRACING")
    assert "lockdown is 'integrity'" in text
