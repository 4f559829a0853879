"""ROS 2 without ROS: message <-> array conversion, headers and camera_info, bag source and sink.

Nothing here imports rclpy. Messages are plain dicts (or any object with the fields as attributes,
as mcap-ros2-support decodes them and rclpy builds them), so the same code serves the bag source,
the bag sink and the rclpy node in ros2/simokit_ros. Bags need `pip install 'simokit[ros]'`.
"""
