"""Dense tasks: specifications, losses, metrics and the normalised multi-task score."""

from simokit.tasks.spec import IGNORE_INDEX, TASKS, TaskSpec, get_task

__all__ = ["IGNORE_INDEX", "TASKS", "TaskSpec", "get_task"]
