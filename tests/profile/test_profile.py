"""Profiling: analytic FLOPs, the merged-vs-separate protocol and the CLI's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simokit.cli import main
from simokit.models import VARIANTS
from simokit.profile.flops import vit_flops
from simokit.runtime.timing import time_calls


def test_vits14_flops_match_the_known_count() -> None:
    # ViT-S/14 at 224: 257 tokens, 12 blocks of (12·d²·n + 2·n²·d) MACs = 6.07 GMAC = 12.1 GFLOP.
    flops = vit_flops(VARIANTS["vits14"].to_dict(), 224, 224, [])
    assert flops == pytest.approx(12.2e9, rel=0.02)
    assert vit_flops(VARIANTS["vits14"].to_dict(), 224, 224, [11]) > flops


def test_time_calls_percentiles_are_ordered() -> None:
    stats = time_calls(lambda: sum(range(1000)), batch=4, warmup=1, iters=20)
    assert 0 < stats.p50_ms <= stats.p90_ms <= stats.p99_ms
    assert stats.images_per_s == pytest.approx(4000.0 / stats.p50_ms)


def test_profile_arch_cli_writes_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, plot = tmp_path / "p.json", tmp_path / "p.png"
    args = [
        "profile",
        "--arch",
        "vitnano14",
        "--size",
        "56",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--batches",
        "1,2",
        "--json",
        str(out),
        "--plot",
        str(plot),
        "--threads",
        "1",
    ]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["ratio"] == pytest.approx(result["merged"]["p50_ms"] / result["separate"]["p50_ms"])
    assert set(result["batches"]) == {"1", "2"}
    assert set(result["batches"]["1"]["separate_alone"]) == {"seg", "depth", "normal"}
    assert result["merged"]["file_mb"] < result["separate"]["file_mb"]
    assert 0 < result["merged"]["rss_mb"] < result["separate"]["rss_mb"]
    assert result["merged"]["fraction_of_peak"] > 0
    assert plot.stat().st_size > 1000
    assert "ratio merged/separate p50" in capsys.readouterr().out
    assert result["batches"]["2"]["separate_spinning"]["p50_ms"] > 0  # ORT's default, shown apart


def test_sessions_taking_turns_do_not_spin(tmp_path: Path) -> None:
    from simokit.profile.arch import export_arch
    from simokit.runtime.onnx_session import session_for

    merged, _, _ = export_arch("vitnano14", 56, ("seg",), tmp_path)
    key = "session.intra_op.allow_spinning"
    assert session_for(merged, 1, spin=False).get_session_options().get_session_config_entry(key) == "0"
    with pytest.raises(RuntimeError, match="does not have configuration"):  # ORT's default: spinning
        session_for(merged, 1).get_session_options().get_session_config_entry(key)


def test_profile_needs_a_target() -> None:
    assert main(["profile"]) == 2
