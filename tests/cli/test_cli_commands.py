"""The command table and the shared option groups, checked without running any pipeline."""

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from simokit.cli import COMMANDS, build_parser, main
from simokit.cli.groups import TRITON_MODEL, from_args


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: simokit {name} ")


def test_python_dash_m_runs_the_same_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "simokit.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and all(name in proc.stdout for name in COMMANDS)


def test_table_and_parser_list_the_same_commands() -> None:
    assert list(_subparsers()) == list(COMMANDS)


def test_export_triton_and_serve_share_one_triton_group() -> None:
    parsers = _subparsers()
    groups = {}
    for name in ("export-triton", "serve"):
        (group,) = [g for g in parsers[name]._action_groups if g.title == TRITON_MODEL]
        groups[name] = {a.option_strings[0]: (a.default, a.type, a.help) for a in group._group_actions}
    assert list(groups["serve"]) == ["--name", "--max-batch", "--queue-delay-us", "--instances"]
    export, serve = groups["export-triton"], groups["serve"]
    assert export.pop("--instances")[0] == 2 and serve.pop("--instances")[0] == 1  # the one difference
    assert export == serve


def test_run_backend_choices_come_from_the_backend_table(capsys: pytest.CaptureFixture[str]) -> None:
    from simokit.runtime.capabilities import BACKENDS

    (backend,) = [a for a in _subparsers()["run"]._actions if a.dest == "backend"]
    assert backend.choices == ("auto", *BACKENDS) and backend.default == "auto"
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "b", "--source", "0", "--backend", "bogus"])
    assert exit_info.value.code == 2
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert line.startswith("simokit run: error: argument --backend: invalid choice: 'bogus'")


def test_merge_needs_both_base_and_experts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merge", "--base", str(tmp_path / "base.safetensors"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simokit merge: error: give both --base and --experts, or neither")
    assert "\n" not in err
    assert not (tmp_path / "m").exists()


def test_build_request_check_refuses_what_could_not_be_used() -> None:
    from simokit.config import from_dict
    from simokit.errors import SimokitError
    from simokit.pipeline.build import check_build_request
    from simokit.recipe import PipelineConfig

    cfg = PipelineConfig()
    check_build_request(cfg, "onnxruntime", fp16=True, dynamic_size=True)  # nothing to refuse
    with pytest.raises(SimokitError, match=r"needs tensorrt|--dynamic-size needs size ranges"):
        check_build_request(cfg, "tensorrt", fp16=False, dynamic_size=True)
    routed = from_dict(PipelineConfig, {"routing": {"domains": ["indoor", "outdoor"], "delta": "sparse"}})
    check_build_request(routed, "onnxruntime", fp16=False, dynamic_size=False)
    with pytest.raises(SimokitError, match="only ONNX Runtime opens"):
        check_build_request(routed, "onnxruntime", fp16=True, dynamic_size=False)


@dataclasses.dataclass
class _Options:
    data: str
    keep: bool = True
    n: int = 4


def test_from_args_reads_same_named_flags_and_keeps_defaults() -> None:
    args = argparse.Namespace(data="scenes", n=8, quiet=True, command="x")
    assert from_args(_Options, args) == _Options("scenes", True, 8)
    assert from_args(_Options, args, keep=False) == _Options("scenes", False, 8)
    with pytest.raises(TypeError, match="no field colour"):
        from_args(_Options, args, colour=1)
