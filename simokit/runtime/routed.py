"""Routed bundles on the robot: the SiM router picks a domain engine per frame (no torch).

The router's feature graph (the base encoder's first blocks) runs first on the prepared batch; its
features are scored against each domain's SVD basis, and each frame goes to its domain's engine.
In a frame-IO bundle the router and every engine take the camera frames as they are (each graph
resizes them itself), so the batch reaches them without any numpy resizing.
Engines open lazily on first use and stay resident, so a robot that never goes outdoors never
loads the outdoor engine. For single frames (a video stream) the choice has hysteresis: another
domain must beat the current one by `margin` before the engine switches.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime.bundle import BundleError, BundleMeta, GraphIO
from simokit.runtime.engine import Engine
from simokit.runtime.onnx_session import CPU, session_for
from simokit.runtime.router import Hysteresis, SubspaceRouter


class RoutedEngine(Engine):
    """One engine per domain behind a router; `last_domains` says which ran for the last batch."""

    backend = "routed"

    def __init__(self, root: Path, meta: BundleMeta, open_engine: Any, threads: int | None = None) -> None:
        self.meta, self.root, self.open_engine = meta, root, open_engine
        routing = meta.extra["routing"]
        try:
            self.router = SubspaceRouter.load(root / routing["router"]["bases"])
            # The router runs just before an engine on the same cores: threads left spinning after
            # its run took the cores from the engine and tripled the routed latency
            self.features = session_for(root / routing["router"]["graph"], threads, CPU, spin=False)
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(f"{root}: routing section or router files unusable ({exc})") from None
        fixed = all(isinstance(d, int) for d in self.features.get_inputs()[0].shape[1:3])
        if meta.input.io is GraphIO.FRAME and fixed:
            raise BundleError(f"{root}: frame IO, but the router graph takes model-size inputs; rebuild it")
        self.hysteresis = Hysteresis(float(routing.get("margin", 0.0)))
        self.engines: dict[str, Engine] = {}
        self.counts: Counter[str] = Counter()
        self.last_domains: list[str] = []

    def engine(self, domain: str) -> Engine:
        """The domain's engine, opened on first use."""
        if domain not in self.engines:
            sub = self.root / self.meta.extra["routing"]["engines"][domain]
            engine = self.open_engine(sub)
            if engine.meta.tasks != self.meta.tasks:
                raise BundleError(f"{sub}: tasks {engine.meta.tasks} differ from {self.meta.tasks}")
            if engine.meta.input.io is not self.meta.input.io:  # the batch is prepared once, for all
                raise BundleError(
                    f"{sub}: {engine.meta.input.io.value} IO differs from the routed bundle's "
                    f"{self.meta.input.io.value} IO; rebuild the bundle"
                )
            self.engines[domain] = engine
        return self.engines[domain]

    def route(self, x: np.ndarray) -> list[str]:
        """Domain per frame of a prepared batch (hysteresis applies to single frames)."""
        (feats,) = self.features.run(None, {self.meta.input.name: x})
        residuals = self.router.residuals(feats)
        if len(residuals) == 1:
            return [self.router.domains[self.hysteresis(residuals[0])]]
        return [self.router.domains[i] for i in residuals.argmin(axis=1)]

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.last_domains = self.route(x)
        self.counts.update(self.last_domains)
        out: dict[str, np.ndarray] = {}
        for domain in dict.fromkeys(self.last_domains):
            rows = np.array([i for i, d in enumerate(self.last_domains) if d == domain])
            pred = self.engine(domain)._run(np.ascontiguousarray(x[rows]))
            for task, value in pred.items():
                if task not in out:
                    out[task] = np.zeros((len(x), *value.shape[1:]), value.dtype)
                out[task][rows] = value
        return out

    def describe(self) -> str:
        """Router and the engines opened so far, with how many frames each ran."""
        opened = ", ".join(f"{d}: {self.engines[d].describe()}" for d in self.engines) or "none yet"
        used = ", ".join(f"{d} {n}" for d, n in self.counts.items()) or "no frames yet"
        return (
            f"routed over {', '.join(self.router.domains)} (router block {self.router.block}, "
            f"switches {self.hysteresis.switches}; frames {used}; engines {opened})"
        )
