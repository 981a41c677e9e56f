"""Really load an object's programs on the running kernel and report each outcome: the ground truth
``corebpf compat --vm`` collects inside a VM (``python -m corebpf.analysis.vmload OBJ``).

Each entry program is loaded on its own (with the subprograms it calls) and closed again; a program a
prog array initialiser ties to others is retried with the whole object. The result is one line on
stdout, ``COREBPF-VMLOAD {json}`` with ``{"release", "objects": {path: {name: {"ok", "error"}}}}`` (several
objects share one boot).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
import warnings
from typing import Optional

__all__ = ["load_each", "MARKER", "parse_output", "main"]

MARKER = "COREBPF-VMLOAD "


def _try(path: str, programs: Optional[list[str]]) -> tuple[bool, str]:
    import corebpf

    pin_root = f"/sys/fs/bpf/corebpf-vmload-{uuid.uuid4().hex[:8]}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with corebpf.load(path, programs=programs, pin_root=pin_root):
                return True, ""
    except corebpf.errors.CoreBPFError as e:
        return False, str(e).splitlines()[0] if str(e) else type(e).__name__
    finally:
        if os.path.isdir(pin_root):
            for f in os.listdir(pin_root):
                os.unlink(os.path.join(pin_root, f))
            os.rmdir(pin_root)


def load_each(path: str) -> dict[str, dict[str, object]]:
    """``{program: {"ok": bool, "error": str}}`` from loading each program of ``path`` here."""
    from ..elf.objectspec import ObjectSpec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = ObjectSpec.from_file(path)
    out: dict[str, dict[str, object]] = {}
    whole: Optional[tuple[bool, str]] = None
    for name in sorted(spec.programs):
        ok, err = _try(path, [name])
        if not ok and "prog array" in err and "was not loaded" in err:
            whole = whole or _try(path, None)
            ok, err = whole
        out[name] = {"ok": ok, "error": err}
    return out


def parse_output(text: str) -> Optional[dict[str, object]]:
    """The report of a ``vmload`` run found in ``text`` (None if there is none)."""
    for line in reversed(text.splitlines()):
        if line.startswith(MARKER):
            try:
                return json.loads(line[len(MARKER):])
            except ValueError:
                return None
    return None


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: load the objects named on the command line, print the marker line."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m corebpf.analysis.vmload OBJ [OBJ...]", file=sys.stderr)
        return 2
    objects: dict[str, object] = {}
    for path in args:
        try:
            objects[path] = load_each(path)
        except Exception as e:  # noqa: BLE001 - one broken object must not hide the others' results
            objects[path] = {"": {"ok": False, "error": f"{type(e).__name__}: {e}"}}
    report = {"release": os.uname().release, "objects": objects}
    print(MARKER + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
