"""Probe kinds. Each module exposes ``build(config, deps) -> list[Probe]``; BUILDERS lists them all."""

from __future__ import annotations

from agent.probes import integrity, postgres, services, system, tls
from agent.probes import app_jobs, embeddings, jellyfin_tasks, posters, push_jobs, queues
from agent.probes import backups, logs, sqlite
from agent.probes.base import Probe

BUILDERS = [system.build, postgres.build, integrity.build, services.build, tls.build]
BUILDERS += [app_jobs.build, queues.build, embeddings.build, posters.build, jellyfin_tasks.build, push_jobs.build]
BUILDERS += [sqlite.build, backups.build, logs.build]


def build_probes(config, deps) -> list[Probe]:
    """Every probe the config asks for, in a stable order."""
    return [probe for builder in BUILDERS for probe in builder(config, deps)]
