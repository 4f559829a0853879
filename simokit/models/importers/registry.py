"""The importer table: each format module registers one Importer here when it is imported."""

from __future__ import annotations

from typing import Protocol

from simokit.errors import ConfigError
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.source import Source


class Importer(Protocol):
    """A checkpoint format: a name, a one-line description, detection and conversion."""

    name: str
    description: str

    def detect(self, source: Source) -> bool:
        """True when `source` is in this format (cheap: looks at keys and config only)."""
        ...

    def convert(self, source: Source) -> list[ImportedModel]:
        """Every model the file holds: one per task head (sharing the encoder), or one base encoder."""
        ...


IMPORTERS: dict[str, Importer] = {}


def register(importer: Importer) -> Importer:
    """Add `importer` under its name; a second format with the same name is refused."""
    if importer.name in IMPORTERS:
        raise ConfigError(f"importer '{importer.name}' is registered twice")
    IMPORTERS[importer.name] = importer
    return importer
