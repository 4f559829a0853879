"""The ament_python package in ros2/simokit_ros: its files parse and agree with each other (no ROS here).

rclpy cannot be installed on these machines, so the node is only compiled and read, never imported;
what it does besides rclpy calls is simokit.runtime.ros, tested through real CDR in test_ros_convert.
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from simokit.runtime.sources import StreamError, open_source

PACKAGE = Path(__file__).resolve().parents[2] / "ros2" / "simokit_ros"


def _calls(path: Path, name: str) -> list[ast.Call]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
    ]


def test_package_xml_is_an_ament_python_package() -> None:
    root = ET.parse(PACKAGE / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "simokit_ros" == PACKAGE.name
    assert root.findtext("export/build_type") == "ament_python"
    depends = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "launch_ros"} <= depends
    assert (PACKAGE / "resource" / "simokit_ros").is_file()  # the ament index marker


def test_python_files_compile_and_the_entry_point_exists() -> None:
    for path in PACKAGE.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    (setup,) = _calls(PACKAGE / "setup.py", "setup")
    entry = ast.literal_eval(next(k.value for k in setup.keywords if k.arg == "entry_points"))
    assert entry["console_scripts"] == ["simokit_node = simokit_ros.node:main"]
    node = ast.parse((PACKAGE / "simokit_ros" / "node.py").read_text())
    assert "main" in {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
    assert "install_scripts=$base/lib/simokit_ros" in (PACKAGE / "setup.cfg").read_text()


def test_launch_file_starts_that_executable_with_remappable_topics() -> None:
    launch = PACKAGE / "launch" / "simokit.launch.py"
    (node,) = _calls(launch, "Node")
    kw = {k.arg: k.value for k in node.keywords}
    assert (
        ast.literal_eval(kw["package"]) == "simokit_ros"
        and ast.literal_eval(kw["executable"]) == "simokit_node"
    )
    remapped = {ast.literal_eval(t.elts[0]) for t in kw["remappings"].elts}  # type: ignore[attr-defined]
    assert remapped == {"image", "image/compressed", "camera_info"}
    declared = {ast.literal_eval(c.args[0]) for c in _calls(launch, "DeclareLaunchArgument")}
    assert declared == {"params_file", "image", "camera_info"}


def test_params_yaml_sets_exactly_the_parameters_the_node_declares() -> None:
    params = yaml.safe_load((PACKAGE / "config" / "params.yaml").read_text())["simokit"]["ros__parameters"]
    node = PACKAGE / "simokit_ros" / "node.py"
    declared = {ast.literal_eval(c.args[0]): ast.literal_eval(c.args[1]) for c in _calls(node, "param")}
    assert set(params) == set(declared)
    for name, default in declared.items():  # ROS refuses a parameter file value of another type
        assert type(params[name]) is type(default), name


def test_the_sample_is_replaced_by_the_package() -> None:
    assert not (PACKAGE.parents[1] / "samples" / "ros2_publisher.py").exists()
    assert "cannot run" in (PACKAGE / "README.md").read_text()


def test_bags_without_mcap_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcap", None)
    monkeypatch.setitem(sys.modules, "mcap.reader", None)
    with pytest.raises(StreamError, match=r"needs mcap and mcap-ros2-support: pip install 'simokit\[ros\]'"):
        open_source("robot.mcap", topic="/camera/image_raw").open()
