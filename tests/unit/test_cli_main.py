"""``corebpf`` entry point: click loads lazily, and doctor's prober starts early only for argument
lists that surely probe."""

from __future__ import annotations

import subprocess
import sys

import pytest

from corebpf.cli import main as cli_main


@pytest.mark.parametrize(("args", "started"), [
    (["doctor"], True),
    (["doctor", "--json"], True),
    (["doctor", "--json", "--no-mount", "--no-inventory", "--helpers"], True),
    (["doctor", "--no-probe"], False),
    (["doctor", "--json", "--cache"], False),
    (["doctor", "--schema"], False),
    (["doctor", "--help"], False),
    (["doctor", "--jsn"], False),
    (["doctor", "extra"], False),
    (["prog", "list"], False),
    ([], False),
])
def test_prestart_only_when_doctor_surely_probes(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                 started: bool) -> None:
    from corebpf.features import background
    from corebpf.node import readiness

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(background, "start_split", lambda parts=2: ["prober"] * parts)
    monkeypatch.setattr(readiness, "prestart", lambda **kw: calls.append(kw))
    cli_main._prestart_doctor_probes(args)
    assert bool(calls) == started
    if started:
        assert calls == [{"mount": "--no-mount" not in args, "inventory": "--no-inventory" not in args,
                          "probers": ["prober", "prober"]}]


def test_cli_group_built_on_demand() -> None:
    code = ("import sys, corebpf.cli.main as m; assert 'click' not in sys.modules; "
            "from corebpf.cli.main import cli; assert 'click' in sys.modules; "
            "assert 'doctor' in cli.list_commands(None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
