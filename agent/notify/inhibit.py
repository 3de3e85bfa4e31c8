"""Dependency inhibition (DESIGN.md §7): the stack's known topology, as a table in code.

- PostgresDown{database=X} mutes the job, queue, poster and embedding alerts whose `app` or `database`
  label is X, and ProbeFailing{target=X}.
- ServiceDown of the media server (kind jellyfin or emby) mutes PostersMissing.
- InternetUnreachable — every external metadata API (kinds tmdb, omdb, mdblist, anidb, trakt, openai)
  down at once, at least two configured — mutes those services' ServiceDown, ServiceErrorRateHigh and
  ProbeFailing: one alert instead of six.

InternetUnreachable is an aggregate over several series, which the rule model (and therefore the
Prometheus export, agent/rules/promql.py) does not express, so it is defined here as a built-in rule with
its own evaluator rather than in agent/rules/defaults.yaml. Its `for` (1m) is shorter than ServiceDown's
(2m) so it fires first and the single services' alerts are muted from the start.

A muted alert is still evaluated and exported; only its new notifications are held, never a resolution
(agent/notify/notifier.py applies this), and the message says what muted it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from agent.rules.engine import AlertState, alert_id
from agent.rules.model import Match, Rule
from agent.store import Store

EXTERNAL_KINDS = frozenset({"tmdb", "omdb", "mdblist", "anidb", "trakt", "openai"})
MEDIA_SERVER_KINDS = frozenset({"jellyfin", "emby"})
# Alerts about an app's data, which a down database makes meaningless.
DATABASE_DEPENDENTS = frozenset({"JobOverdue", "JobStuck", "FailedJobsHigh", "JobErrorRateHigh", "QueueTimeHigh",
                                 "PostersMissing", "LegacyEmbeddingsPresent", "ProbeFailing"})

INTERNET_UNREACHABLE = Rule.model_validate({
    "name": "InternetUnreachable",
    "metric": "caretaker_service_up",
    "op": "==",
    "threshold": 0,
    "for": "1m",
    "severity": "critical",
    "unit": "count",
    "summary": "All {value} external metadata APIs are unreachable",
    "description": "Every configured metadata API (TMDB, OMDb, MDBList, AniDB, Trakt, OpenAI) fails its health "
                   "check at once: the network or DNS of this host is the likely cause, not the services.",
})


def internet_unreachable(store: Store, now: float) -> list[Match]:
    """One unlabelled match whose value is the number of external APIs down; fires when all of at least
    two are down. No external API configured: no match at all."""
    ups = [s.value for s in store.series("caretaker_service_up") if s.label("kind") in EXTERNAL_KINDS]
    if not ups:
        return []
    down = sum(1 for v in ups if v == 0)
    fires = len(ups) >= 2 and down == len(ups)
    return [Match((), float(down), fires, fires)]


@dataclass(frozen=True)
class Inhibition:
    """`source` firing with labels `src` mutes an alert of rule r with labels t when r is in `targets`
    and `related(src, t)`."""

    source: str
    targets: frozenset[str]
    related: Callable[[dict[str, str], dict[str, str]], bool]


def inhibitions(external_services: frozenset[str]) -> list[Inhibition]:
    """The inhibition table; `external_services` are the names of the configured metadata API services."""

    def same_database(src: dict[str, str], t: dict[str, str]) -> bool:
        db = src.get("database")
        return db is not None and db in (t.get("app"), t.get("database"), t.get("target"))

    def media_server(src: dict[str, str], t: dict[str, str]) -> bool:
        return src.get("kind") in MEDIA_SERVER_KINDS

    def external(src: dict[str, str], t: dict[str, str]) -> bool:
        return t.get("kind") in EXTERNAL_KINDS or t.get("service") in external_services \
            or t.get("target") in external_services

    return [
        Inhibition("PostgresDown", DATABASE_DEPENDENTS, same_database),
        Inhibition("ServiceDown", frozenset({"PostersMissing"}), media_server),
        Inhibition("InternetUnreachable", frozenset({"ServiceDown", "ServiceErrorRateHigh", "ProbeFailing"}),
                   external),
    ]


def muted_by(table: list[Inhibition], rule: str, labels: dict[str, str], firing: list[AlertState]) -> str | None:
    """The firing alert that mutes (rule, labels), as ``PostgresDown{database="aperture"}``, or None."""
    for inh in table:
        if rule not in inh.targets:
            continue
        for src in firing:
            if src.rule == inh.source and (src.rule, src.labels) != (rule, tuple(sorted(labels.items()))) \
                    and inh.related(dict(src.labels), labels):
                return alert_id(src.rule, src.labels)
    return None
