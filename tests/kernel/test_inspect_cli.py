"""``corebpf inspect`` on every corpus object: JSON shape, programs/maps/globals/externs as the spec
has them, CO-RE resolutions on this kernel equal the loader's, human tables, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import corebpf
from corebpf.analysis.inspect import inspect_object
from corebpf.elf.objectspec import ObjectSpec

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
OBJECTS = sorted(CORPUS.glob("*.bpf.o"))


def _run(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from corebpf.cli.main import main; sys.argv[0] = 'corebpf'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _spec(path: Path) -> ObjectSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ObjectSpec.from_file(path)


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda p: p.name)
def test_inspect_json_matches_spec(obj: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = inspect_object(obj)
    spec = _spec(obj)
    json.dumps(report)  # JSON-ready as documented
    assert set(report) == {"object", "programs", "subprograms", "maps", "globals", "externs", "btf_kinds"}
    assert [p["name"] for p in report["programs"]] == sorted(spec.programs)
    for p in report["programs"]:
        ps = spec.programs[p["name"]]
        assert p["section"] == ps.section and p["insns"] >= ps.insn_count
        assert p["min_kernel"] and p["min_kernel_reason"]
        assert set(p["maps"]) <= set(spec.maps)
        rels = p["core"]["relocations"]
        n_relos = len(ps.core_relos) + sum(len(spec.subprograms[s].core_relos) for s in p["subprograms"])
        assert len(rels) == n_relos
        assert p["core"]["ok"] is (not any(r["status"] == "fails" for r in rels) and p["core"]["error"] is None)
    assert {m["name"] for m in report["maps"]} == set(spec.maps)
    assert {g["name"] for g in report["globals"]} == {n for n, v in spec.variable_specs.items()
                                                      if v.section != ".kconfig"}
    assert {e["name"] for e in report["externs"]} == set(spec.externs)


def test_inspect_relocations_equal_the_loaders() -> None:
    for name in ("core_fields.bpf.o", "core_exists.bpf.o", "core_bitfields.bpf.o"):
        report = inspect_object(CORPUS / name)
        with corebpf.load(CORPUS / name) as obj:
            loaded = {fn: [r.as_dict() for r in rs] for fn, rs in obj.core_resolutions.items()}
        for p in report["programs"]:
            mine = [{k: v for k, v in r.items() if k not in ("function", "status")} for r in p["core"]["relocations"]
                    if r["function"] == p["name"]]
            assert mine == loaded[p["name"]], name


def test_inspect_values_and_externs() -> None:
    g = {x["name"]: x for x in inspect_object(CORPUS / "obj_globals.bpf.o")["globals"]}
    assert g["target_port"]["value"] == 80 and g["target_port"]["readonly"]
    assert g["run_mode"]["value"] == "MODE_COUNT"
    assert g["bounds"]["value"] == {"lo": 10, "hi": 20}
    assert g["label"]["value"] == "default"
    ext = {e["name"]: e for e in inspect_object(CORPUS / "obj_ksyms.bpf.o")["externs"]}
    assert ext["bpf_rcu_read_lock"]["kind"] == "kfunc" and ext["bpf_rcu_read_lock"]["status"] == "ok"
    assert ext["corebpf_no_such_kfunc"]["weak"] and ext["corebpf_no_such_kfunc"]["status"] == "weak-missing"
    assert ext["schedule"]["status"] == "ok"
    maps = {m["name"]: m for m in inspect_object(CORPUS / "obj_map_in_map.bpf.o")["maps"]}
    assert maps["outer_array"]["type"] == "ARRAY_OF_MAPS" and maps["outer_array"]["inner"]["type"] == "ARRAY"
    assert maps["outer_array"]["contents"] == [{"index": 0, "name": "inner_a"}, {"index": 2, "name": "inner_b"}]
    pin = {m["name"]: m for m in inspect_object(CORPUS / "obj_pinning.bpf.o")["maps"]}
    assert pin["corebpf_pinned_counts"]["pinning"] == "by_name"


def test_inspect_guarded_relocations() -> None:
    p = inspect_object(CORPUS / "core_exists.bpf.o")["programs"][0]
    poisoned = [r for r in p["core"]["relocations"] if r["poisoned"]]
    assert poisoned and all(r["status"] == "guarded" for r in poisoned)
    assert p["core"]["ok"]


def test_inspect_cli_human_and_json() -> None:
    human = _run("inspect", str(CORPUS / "tp_btf.bpf.o"))
    assert human.returncode == 0, human.stderr
    for text in ("switch_btf", "bpf_ringbuf_reserve", "RINGBUF", "5.8", "CO-RE relocations"):
        assert text in human.stdout
    js = _run("inspect", str(CORPUS / "kfunc.bpf.o"), "--json")
    assert js.returncode == 0
    data = json.loads(js.stdout)
    assert data["programs"][0]["kfuncs"] == ["bpf_rcu_read_lock", "bpf_rcu_read_unlock"]
    nocore = _run("inspect", str(CORPUS / "core_fields.bpf.o"), "--no-core", "--json")
    assert nocore.returncode == 0
    p = json.loads(nocore.stdout)["programs"][0]
    assert p["core"]["ok"] is None and p["core"]["unresolved"]


def test_inspect_cli_bad_input(tmp_path: Path) -> None:
    assert _run("inspect", str(tmp_path / "missing.bpf.o")).returncode == 2
    bad = tmp_path / "bad.bpf.o"
    bad.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 40)
    r = _run("inspect", str(bad))
    assert r.returncode == 1 and "error" in r.stderr
    trunc = tmp_path / "trunc.bpf.o"
    trunc.write_bytes((CORPUS / "core_fields.bpf.o").read_bytes()[:300])
    assert _run("inspect", str(trunc)).returncode == 1
