"""Importers: experts and bases in the formats people hold, converted to simokit checkpoints.

Each format is one module that registers an `Importer` (registry.py). `read_source` loads a file or
Hugging Face folder without unpickling code; the registry detects the format; the importer returns
`ImportedModel`s (encoder in the official DINOv2 layout, plus a head when the file has one), and
`save_imported` writes a simokit checkpoint that `simokit merge` and `simokit build` read.
"""

from __future__ import annotations

from simokit.models.importers.lookup import (
    detect,
    import_model,
    known_formats,
    load_any,
    load_meta,
    read_base,
    read_models,
)
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import IMPORTERS, Importer, register
from simokit.models.importers.source import Source, read_source
from simokit.models.importers.writer import save_imported

__all__ = [
    "IMPORTERS",
    "ImportedModel",
    "Importer",
    "Source",
    "detect",
    "import_model",
    "known_formats",
    "load_any",
    "load_meta",
    "read_base",
    "read_models",
    "read_source",
    "register",
    "save_imported",
]
