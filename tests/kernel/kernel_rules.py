"""The matrix rule for kernel tests: skip only when the running kernel is older than the feature.

A feature missing on a kernel older than the release that introduced it (per corebpf's
kernel-versions dataset, ``corebpf.analysis.kernel_versions``) is a skip with the reason; missing on a
kernel that must have it is a failure. Tests call :func:`skip_if_older` before using the feature, or
:func:`missing_is_expected` when they only learn at run time (a probe, a load) that it is missing.
"""

from __future__ import annotations

import os

import pytest

from corebpf.analysis.kernel_versions import KernelVersion, Requirement, lookup


def running_kernel() -> KernelVersion:
    """``major.minor`` of the kernel these tests run on."""
    return KernelVersion.parse(os.uname().release)


def requirement(what: str, name: str) -> Requirement:
    """The dataset's entry; an unknown entry is a bug in the test, not a skip."""
    req = lookup(what, name)
    if req.version is None:
        raise AssertionError(f"{what}/{name} has no version in kernel_versions.json: add it (with its source)")
    return req


def older_than(what: str, name: str) -> bool:
    """True when the running kernel predates ``name`` of table ``what`` (e.g. ``helpers``, ``bpf_loop``)."""
    return running_kernel() < requirement(what, name).version


def skip_if_older(what: str, name: str, detail: str = "") -> None:
    """pytest.skip, naming the feature and its release, when this kernel predates it."""
    req = requirement(what, name)
    if running_kernel() < req.version:
        extra = f" ({detail})" if detail else ""
        pytest.skip(f"{req.label} needs Linux {req.version}+, this is {os.uname().release}{extra}")


def missing_is_expected(what: str, name: str, why: str) -> None:
    """A feature was found missing (``why``): skip on an older kernel, fail on one that must have it."""
    req = requirement(what, name)
    if running_kernel() < req.version:
        pytest.skip(f"{req.label} needs Linux {req.version}+, this is {os.uname().release}: {why}")
    pytest.fail(f"{req.label} is missing on Linux {os.uname().release} (>= {req.version}): {why}")
