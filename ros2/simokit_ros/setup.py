"""ament_python build of the simokit_ros package: the node, its launch file and its parameters."""

from glob import glob

from setuptools import setup

PACKAGE = "simokit_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml", "README.md"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="simokit maintainers",
    maintainer_email="simokit@example.org",
    description="Segmentation, depth and normals from a simokit bundle as ROS 2 topics",
    license="Apache-2.0",
    entry_points={"console_scripts": ["simokit_node = simokit_ros.node:main"]},
)
