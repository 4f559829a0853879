"""Start the simokit node with its parameter file and the camera topics remapped.

ros2 launch simokit_ros simokit.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    """The node, its parameters and three launch arguments: params_file, image, camera_info."""
    default_params = Path(get_package_share_directory("simokit_ros")) / "config" / "params.yaml"
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=str(default_params)),
            DeclareLaunchArgument("image", default_value="/camera/image_raw"),
            DeclareLaunchArgument("camera_info", default_value="/camera/camera_info"),
            Node(
                package="simokit_ros",
                executable="simokit_node",
                name="simokit",
                parameters=[LaunchConfiguration("params_file")],
                remappings=[
                    ("image", LaunchConfiguration("image")),
                    ("image/compressed", [LaunchConfiguration("image"), "/compressed"]),
                    ("camera_info", LaunchConfiguration("camera_info")),
                ],
                output="screen",
            ),
        ]
    )
