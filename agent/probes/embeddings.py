"""Embeddings probe: rows and size of each embedding relation, and the legacy ones still holding rows.

Profile queries (agent/profiles/README.md): `relations` → rows (relation, dimension, legacy, rows,
size_bytes); `active_model` → one row (model[, dimension]); `model_dimensions` maps model names to their
output dimension. Exports `caretaker_embeddings_rows{app,relation,dimension}`,
`caretaker_embeddings_size_bytes{app,relation,dimension}` (dimension "" when the name has none) and
`caretaker_embeddings_legacy_relations{app}`: relations marked legacy, plus those whose dimension differs
from the active model's, that still hold rows — what Aperture's "Delete Legacy" would remove.
"""

from __future__ import annotations

from agent.appdb import app_entries, describe_db_error, open_app_db, query_params
from agent.config import Config, DatabaseConfig, SQLiteConfig
from agent.probes.base import Probe, ProbeResult
from agent.profiles import EmbeddingsSection, Profile
from agent.rules.format import format_value
from agent.samples import Sample, sample


def active_dimension(row: dict | None, section: EmbeddingsSection) -> tuple[int | None, str]:
    """(dimension of the active model or None, a problem to report or "")."""
    if not row or not row.get("model"):
        return None, ""
    if row.get("dimension") is not None:
        return int(row["dimension"]), ""
    model = str(row["model"])
    dims = section.model_dimensions
    found = dims.get(model, dims.get(model.split(":", 1)[0]))  # Ollama names carry a tag: nomic-embed-text:latest
    if found is None:
        return None, f"active model {model!r} has no known dimension: add it to embeddings.model_dimensions"
    return found, ""


def embedding_samples(app: str, relations: list[dict], active: int | None) -> tuple[list[Sample], list[str]]:
    """Samples of every relation, and the names of the legacy/inactive ones that hold rows."""
    samples, legacy = [], []
    for r in relations:
        dim = r.get("dimension")
        labels = {"app": app, "relation": str(r["relation"]), "dimension": "" if dim is None else str(int(dim))}
        rows = int(r.get("rows") or 0)
        samples.append(sample("caretaker_embeddings_rows", rows, **labels))
        samples.append(sample("caretaker_embeddings_size_bytes", int(r.get("size_bytes") or 0), **labels))
        inactive = active is not None and dim is not None and int(dim) != active
        if rows > 0 and (bool(r.get("legacy")) or inactive):
            legacy.append(labels["relation"])
    samples.append(sample("caretaker_embeddings_legacy_relations", len(legacy), app=app))
    return samples, sorted(legacy)


class EmbeddingsProbe(Probe):
    kind = "embeddings"

    def __init__(self, entry: DatabaseConfig | SQLiteConfig, profile: Profile, deps):
        super().__init__(entry.name, entry.app.content_interval, entry.app.content_timeout)
        self.entry, self.deps = entry, deps
        self.section: EmbeddingsSection = profile.embeddings  # type: ignore[assignment]  # build() checks it

    async def run(self) -> ProbeResult:
        now = self.deps.clock()
        try:
            async with open_app_db(self.entry) as db:
                params = query_params(self.entry, now)
                relations = await db.rows(self.section.relations, **params)
                model = await db.rows(self.section.active_model, **params) if self.section.active_model else []
        except Exception as exc:  # unreachable database or a broken query
            return ProbeResult(ok=False, reason=describe_db_error(exc))
        active, problem = active_dimension(model[0] if model else None, self.section)
        samples, legacy = embedding_samples(self.target, relations, active)
        total = sum(s.value for s in samples if s.name == "caretaker_embeddings_size_bytes")
        summary = (f"{len(relations)} relations, {format_value('bytes', total)}; active dimension {active or '?'}; "
                   f"legacy with rows: {', '.join(legacy) or 'none'}")
        return ProbeResult(samples, ok=not problem, reason=problem, summary=summary)


def build(config: Config, deps) -> list[Probe]:
    return [EmbeddingsProbe(entry, profile, deps) for entry, profile in app_entries(config) if profile.embeddings]
