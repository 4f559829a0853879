"""Exception types for user-facing errors; the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class SimokitError(Exception):
    """Base class for errors caused by user input (files, shapes, arguments), not by bugs."""

    exit_code = 2


class ConfigError(SimokitError):
    """A configuration file or command-line value is invalid."""


class CheckpointError(SimokitError):
    """A checkpoint is missing, corrupt, of another architecture or from another base."""


class DataError(SimokitError):
    """A dataset or image folder is missing, empty or in the wrong layout."""


class ShapeError(SimokitError):
    """An input tensor or image has a shape the model cannot take."""


class BundleError(SimokitError):
    """A bundle directory is missing, incomplete, altered or from an incompatible simokit."""
