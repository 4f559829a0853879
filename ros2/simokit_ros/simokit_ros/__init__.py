"""simokit as a ROS 2 node: a thin rclpy shell around simokit.runtime.ros."""
