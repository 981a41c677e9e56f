"""The ``corebpf`` command: a click group whose subcommands live one per module and load lazily.

click itself is imported on first use of :data:`cli` (a module attribute built on demand), so that
:func:`main` can start ``corebpf doctor``'s probe process before any heavy import.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

# command name -> "module:attribute"; modules import only when their command runs, so
# `corebpf --help` and `corebpf doctor` stay fast.
SUBCOMMANDS = {
    "doctor": "corebpf.cli.doctor:doctor",
    "prog": "corebpf.cli.prog:prog",
    "map": "corebpf.cli.map:map_group",
    "link": "corebpf.cli.link:link",
    "btf": "corebpf.cli.btf:btf",
    "inspect": "corebpf.cli.inspect:inspect",
    "compat": "corebpf.cli.compat:compat",
    "run": "corebpf.cli.run:run",
    "vmtest": "corebpf.cli.vmtest:vmtest",
    "kernel": "corebpf.cli.kernel:kernel",
}

# `corebpf doctor` flags after which it still probes (and that click accepts as they are)
_PROBING_DOCTOR_FLAGS = frozenset({"--json", "--helpers", "--no-mount", "--no-inventory"})


def _build() -> Any:
    import click

    class LazyGroup(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted(set(SUBCOMMANDS) | set(self.commands))

        def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
            target = SUBCOMMANDS.get(name)
            if target is None:
                return self.commands.get(name)
            module, attr = target.split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as exc:
                if exc.name == module:
                    return None  # command not built yet in this version
                raise

    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="corebpf")
    def cli() -> None:
        """eBPF in production, from Python: is this node ready, what runs here, load CO-RE objects."""

    globals().update(cli=cli, LazyGroup=LazyGroup)
    return cli


def __getattr__(name: str) -> Any:
    if name in ("cli", "LazyGroup"):
        _build()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _prestart_doctor_probes(args: list[str]) -> None:
    """``corebpf doctor`` spends most of its run probing the kernel: start the probes (in a forked
    child, after the mounts, the bpf() check and the inventory's id list) before click and the rest
    are imported, so those imports overlap the probes. Only for argument lists that surely reach the
    command and probe; the command takes the start over (see ``node.readiness.prestart``)."""
    if args[:1] == ["doctor"] and set(args[1:]) <= _PROBING_DOCTOR_FLAGS:
        from ..features.background import start_split

        # fork before importing the host-fact modules: the children's own preparation (a BTF scan)
        # overlaps those imports; they wait for go, given once nothing may precede the probes
        probers = start_split()
        from ..node.readiness import prestart

        prestart(mount="--no-mount" not in args, inventory="--no-inventory" not in args, probers=probers)


def main() -> None:
    """Entry point of the console script: corebpf errors become one clear line and exit code 1."""
    _prestart_doctor_probes(sys.argv[1:])
    import click

    from ..errors import CoreBPFError

    group = globals().get("cli") or _build()
    try:
        rc = group.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CoreBPFError as exc:
        click.echo(f"corebpf: error: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(rc if isinstance(rc, int) else 0)
