"""YAML recipes: the demo file mirrors the built-in defaults; bad values are named errors."""

from pathlib import Path

import pytest

from simokit.config import apply_overrides, from_dict, load_yaml, to_dict
from simokit.errors import ConfigError
from simokit.recipe import PipelineConfig

REPO = Path(__file__).resolve().parents[1]


def test_demo_yaml_equals_builtin_defaults() -> None:
    cfg = from_dict(PipelineConfig, load_yaml(REPO / "configs" / "demo.yaml"))
    assert cfg == PipelineConfig()


def test_overrides_and_types() -> None:
    data = apply_overrides({}, ["experts.stage2.lr=5e-4", "data.train=64", "experts.tasks=[seg, depth]"])
    cfg = from_dict(PipelineConfig, data)
    assert cfg.experts.stage2.lr == pytest.approx(5e-4)
    assert cfg.experts.stage2.steps == PipelineConfig().experts.stage2.steps  # untouched sibling kept
    assert cfg.data.train == 64
    assert cfg.experts.tasks == ("seg", "depth")
    assert to_dict(cfg)["experts"]["tasks"] == ["seg", "depth"]


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("data.trian=3", "unknown key"),
        ("data.size=100", "multiple of the patch size"),
        ("data.train=abc", "expected int"),
        ("noequals", "key.sub=value"),
        ("base.mask_ratio=1.5", "mask_ratio"),
    ],
)
def test_bad_values_are_config_errors(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_dict(PipelineConfig, apply_overrides({}, [override]))


def test_missing_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(bad)
