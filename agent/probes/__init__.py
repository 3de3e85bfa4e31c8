"""Probe kinds. Each module exposes ``build(config, deps) -> list[Probe]``; BUILDERS lists them all."""

from __future__ import annotations

from agent.probes import integrity, postgres, system
from agent.probes.base import Probe

BUILDERS = [system.build, postgres.build, integrity.build]


def build_probes(config, deps) -> list[Probe]:
    """Every probe the config asks for, in a stable order."""
    return [probe for builder in BUILDERS for probe in builder(config, deps)]
