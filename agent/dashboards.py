"""The Grafana dashboards, built from code with grafana-foundation-sdk ``~=0.0.21`` (Grafana 12 schema;
LIBRARIES.md B1) and written as JSON for Grafana's file provisioning (``dashboards/provisioning/``).

Every panel sets a unit and its thresholds. A panel that shows a rule's metric takes its thresholds from
the rule itself (`agent.rules.default_rules()`), never retyped, so Grafana colours exactly what fires:
Grafana gives a value the colour of the highest step at or below it, so

- ``> t``  → steps ``[ok, t: severity]`` plus a value mapping that paints exactly ``t`` (which does not
  fire) like the step below it; a clear threshold adds a ``clear: band`` step (the hysteresis band),
- ``< t``  → ``[severity, t: ok]``,
- ``== t`` → ``[ok, t: severity, t+1: ok]`` (equality rules are on counts and 0/1 states).

Only `build_dashboards()` / `write_dashboards()` import the SDK; the agent never needs them at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.common import (BigValueColorMode, BigValueGraphMode, GraphThresholdsStyleMode,
                                                  LegendDisplayMode, LegendPlacement)
from grafana_foundation_sdk.models.dashboard import (DashboardLinkType, DataSourceRef, Threshold, ThresholdsMode,
                                                     ValueMap, ValueMappingResult, VariableRefresh)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from agent.durations import format_duration
from agent.rules.format import format_value
from agent.rules.model import Clause, Rule, default_rules
from agent.rules.promql import number

TAG = "caretaker"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
OK, BAND, NEUTRAL = "green", "yellow", "text"
SEVERITY_COLOR = {"critical": "red", "warning": "orange", "info": "blue"}
_SEVERITY_ORDER = ("info", "warning", "critical")
UNIT = {"ratio": units.PercentUnit, "seconds": units.Seconds, "bytes": units.BytesIEC, "count": units.Short,
        "timestamp": units.DateTimeFromNow}
# Text for 0/1 state series, so a stat reads "down" rather than "0".
STATES = {
    "caretaker_service_up": ("down", "up"),
    "caretaker_service_auth_valid": ("rejected", "valid"),
    "caretaker_postgres_up": ("down", "up"),
    "caretaker_backup_verified": ("failed", "verified"),
    "caretaker_probe_success": ("failing", "ok"),
    "caretaker_job_stuck": ("no", "stuck"),
}


def sel(metric: str, **matchers: str) -> str:
    """``caretaker_x{instance=~"$instance", k="v"}``: every query follows the instance variable."""
    extra = "".join(f', {k}="{v}"' for k, v in matchers.items())
    return f'{metric}{{instance=~"$instance"{extra}}}'


def _worst(rule: Rule) -> str:
    severities = {rule.severity} | {s for by in rule.severity_by.values() for s in by.values()}
    return SEVERITY_COLOR[max(severities, key=_SEVERITY_ORDER.index)]


@dataclass(frozen=True)
class Limits:
    """Grafana thresholds and value mappings for one rule clause (see the module docstring)."""

    steps: list[Threshold]
    mappings: dict[str, ValueMappingResult] = field(default_factory=dict)
    description: str = ""
    runbook: str | None = None


def rule_limits(rule: Rule, clause: Clause | None = None) -> Limits:
    """The thresholds of `rule`'s main condition, or of one of its `also` clauses."""
    c = clause or rule.main
    bad, t = _worst(rule), c.threshold
    clear = rule.clear if clause is None else None
    if c.op in (">", ">="):
        steps = [Threshold(color=OK)] + ([Threshold(value=clear, color=BAND)] if clear is not None else [])
        steps.append(Threshold(value=t, color=bad))
        mappings = {number(t): ValueMappingResult(color=BAND if clear is not None else OK)} if c.op == ">" else {}
    elif c.op in ("<", "<="):
        steps = [Threshold(color=bad)] + ([Threshold(value=t, color=BAND)] if clear is not None else [])
        steps.append(Threshold(value=clear if clear is not None else t, color=OK))
        mappings = {number(t): ValueMappingResult(color=bad)} if c.op == "<=" else {}
    elif c.op == "==":
        steps, mappings = [Threshold(color=OK), Threshold(value=t, color=bad), Threshold(value=t + 1, color=OK)], {}
    else:  # "!="
        steps, mappings = [Threshold(color=bad), Threshold(value=t, color=OK), Threshold(value=t + 1, color=bad)], {}
    value = "" if c.value == "raw" else f"{c.value} "
    text = f"Alert {rule.name} when {value}{c.op} {format_value(rule.unit, t)}"
    if clear is not None:
        text += f" (firing until it crosses {format_value(rule.unit, clear)})"
    text += f" for {format_duration(rule.for_)} ({rule.severity})."
    return Limits(steps, mappings, text, rule.runbook_url)


def no_limits(description: str = "") -> Limits:
    """No rule behind the panel: a neutral colour, so Grafana's default red-at-80 never shows."""
    return Limits([Threshold(color=NEUTRAL)], {}, description)


RULES = {r.name: r for r in default_rules()}


def limits(name: str, also: int | None = None) -> Limits:
    rule = RULES[name]
    return rule_limits(rule, None if also is None else rule.also[also])


# --- panels ---------------------------------------------------------------------------------------


@dataclass
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def _targets(panel, targets: list[Target]):
    for i, t in enumerate(targets):
        q = prometheus.Dataquery().expr(t.expr).legend_format(t.legend).ref_id(chr(ord("A") + i)).datasource(DS)
        if t.instant:
            q = q.instant()
        if t.table:
            q = q.format(PromQueryFormat.TABLE)
        panel = panel.with_target(q)
    return panel


def _common(panel, title: str, unit: str, lim: Limits, targets: list[Target], span: int, height: int,
            states: tuple[str, str] | None = None):
    panel = (panel.title(title).datasource(DS).unit(unit).span(span).height(height)
             .thresholds(dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(lim.steps)))
    mappings = dict(lim.mappings)
    for value, text in enumerate(states or ()):
        kept = mappings.get(str(value))
        mappings[str(value)] = ValueMappingResult(text=text, color=kept.color if kept else None)
    if mappings:
        panel = panel.mappings([ValueMap(options={k: mappings[k] for k in sorted(mappings)})])
    if lim.description:
        panel = panel.description(lim.description)
    if lim.runbook:
        panel = panel.links([dashboard.DashboardLink("Runbook").url(lim.runbook).target_blank(True)])
    return _targets(panel, targets)


def stat_panel(title: str, expr: str, unit: str, lim: Limits, legend: str = "", span: int = 4,
               height: int = 4, states: tuple[str, str] | None = None):
    panel = (stat.Panel().color_mode(BigValueColorMode.BACKGROUND).graph_mode(BigValueGraphMode.NONE)
             .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"])))
    return _common(panel, title, unit, lim, [Target(expr, legend)], span, height, states)


def graph(title: str, targets: list[Target], unit: str, lim: Limits, span: int = 12, height: int = 8,
          states: tuple[str, str] | None = None, ratio: bool = False):
    panel = (timeseries.Panel().legend(common_builder.VizLegendOptions().display_mode(LegendDisplayMode.LIST)
                                       .placement(LegendPlacement.BOTTOM).show_legend(True)))
    if len(lim.steps) > 1:  # draw the rule's thresholds on the graph
        panel = panel.thresholds_style(common_builder.GraphThresholdsStyleConfig()
                                       .mode(GraphThresholdsStyleMode.DASHED))
    if ratio:
        panel = panel.min(0).max(1)
    return _common(panel, title, unit, lim, targets, span, height, states)


def table_panel(title: str, targets: list[Target], unit: str, lim: Limits, span: int = 24, height: int = 8):
    for t in targets:
        t.instant, t.table = True, True
    return _common(table.Panel(), title, unit, lim, targets, span, height)


def rule_stat(title: str, name: str, expr: str, legend: str = "", span: int = 4):
    rule = RULES[name]
    return stat_panel(title, expr, UNIT[rule.unit], limits(name), legend, span=span, states=STATES.get(rule.metric))


def rule_graph(title: str, name: str, expr: str, legend: str, span: int = 12):
    rule = RULES[name]
    return graph(title, [Target(expr, legend)], UNIT[rule.unit], limits(name), span=span,
                 states=STATES.get(rule.metric), ratio=rule.unit == "ratio")


# --- dashboards -----------------------------------------------------------------------------------

Rows = list[tuple[str, list]]


def _overview() -> Rows:
    firing = [stat_panel(f"Firing: {sev}", f'sum({sel("caretaker_alerts_firing", severity=sev)}) or vector(0)',
                         units.Short, Limits([Threshold(color=OK), Threshold(value=1, color=SEVERITY_COLOR[sev])],
                                             description=f"Caretaker's own {sev} alerts that fire now."))
              for sev in ("critical", "warning", "info")]
    firing.append(stat_panel("Firing in Prometheus", 'count(ALERTS{alertstate="firing", instance=~"$instance"})'
                             " or vector(0)", units.Short,
                             Limits([Threshold(color=OK), Threshold(value=1, color=SEVERITY_COLOR["warning"])],
                                    description="Alerts of alerts/caretaker.rules.yml that Prometheus fires now."),
                             span=12))
    return [
        ("Alerts", firing + [table_panel("Firing alerts (Prometheus)",
                                         [Target('ALERTS{alertstate="firing", instance=~"$instance"}')],
                                         units.Short, no_limits("Open the runbook_url of each alert."))]),
        ("Health at a glance", [
            rule_stat("Fullest disk", "DiskSpaceHigh", f'max({sel("caretaker_disk_usage_ratio")})'),
            rule_stat("Memory used", "MemoryUsageHigh", f'max({sel("caretaker_memory_usage_ratio")})'),
            rule_stat("Services", "ServiceDown", f'min({sel("caretaker_service_up")})'),
            rule_stat("Credentials", "ServiceAuthInvalid", f'min({sel("caretaker_service_auth_valid")})'),
            rule_stat("Worst service error ratio", "ServiceErrorRateHigh",
                      f'max({sel("caretaker_service_error_ratio")})'),
            rule_stat("Soonest certificate expiry", "TLSCertificateExpiringSoon",
                      f'min({sel("caretaker_tls_certificate_expiry_timestamp_seconds")} - time())'),
            rule_stat("PostgreSQL", "PostgresDown", f'min({sel("caretaker_postgres_up")})'),
            rule_stat("amcheck findings", "PostgresIntegrityError",
                      f'max({sel("caretaker_postgres_integrity_errors")})'),
            rule_stat("SQLite quick_check findings", "SQLiteIntegrityError",
                      f'max({sel("caretaker_sqlite_integrity_errors")})'),
            rule_stat("Invalid indexes", "PostgresInvalidIndex", f'max({sel("caretaker_postgres_invalid_indexes")})'),
            rule_stat("Newest backup age (worst)", "BackupStale",
                      f'max(time() - {sel("caretaker_backup_last_success_timestamp_seconds")})'),
            rule_stat("Backups verified", "BackupVerificationFailed", f'min({sel("caretaker_backup_verified")})'),
            rule_stat("Stuck jobs", "JobStuck", f'max({sel("caretaker_job_stuck")})'),
            rule_stat("Most overdue job", "JobOverdue", f'max({sel("caretaker_job_overdue_seconds")})'),
            rule_stat("Failed job runs (worst app)", "FailedJobsHigh", f'max({sel("caretaker_jobs_failed")})'),
            rule_stat("Oldest queued item", "QueueTimeHigh", f'max({sel("caretaker_queue_oldest_age_seconds")})'),
            rule_stat("Oldest undelivered notification", "NotificationsFailing",
                      f'max({sel("caretaker_notification_outbox_oldest_seconds")})'),
            rule_stat("Probes", "ProbeFailing", f'min({sel("caretaker_probe_success")})'),
        ]),
    ]


def _database() -> Rows:
    return [
        ("Availability", [
            rule_graph("PostgreSQL up", "PostgresDown", sel("caretaker_postgres_up"), "{{database}}", span=8),
            graph("Connections by state", [Target(f'sum by (database, state) ({sel("caretaker_postgres_connections")})',
                                                  "{{database}} {{state}}")], units.Short, no_limits(), span=8),
            graph("Longest open transaction", [Target(sel("caretaker_postgres_longest_transaction_seconds"),
                                                      "{{database}}")], units.Seconds,
                  no_limits("A long transaction holds back VACUUM and keeps dead tuples alive."), span=8),
        ]),
        ("Size and growth", [
            graph("Database size", [Target(sel("caretaker_postgres_database_size_bytes"), "{{database}}"),
                                    Target(sel("caretaker_sqlite_size_bytes"), "{{database}} (SQLite)")],
                  units.BytesIEC, no_limits(), span=6),
            graph("Growth per day", [Target(f'deriv({sel("caretaker_postgres_database_size_bytes")}[6h]) * 86400',
                                            "{{database}}")], units.BytesIEC,
                  no_limits("Linear fit over the last 6 hours, scaled to a day."), span=6),
            graph("Largest relations", [Target(f'topk(10, {sel("caretaker_postgres_relation_size_bytes")})',
                                               "{{database}}.{{relation}}")], units.BytesIEC, no_limits(), span=6),
            graph("User tables", [Target(sel("caretaker_postgres_tables"), "{{database}}")], units.Short,
                  no_limits("Rows of pg_stat_user_tables: a step is a migration, or tables dropped by hand."),
                  span=6),
        ]),
        ("Vacuum", [
            rule_graph("Dead tuple ratio", "PostgresDeadTuplesHigh",
                       f'topk(10, {sel("caretaker_postgres_dead_tuple_ratio")})', "{{database}}.{{relation}}",
                       span=6),
            graph("Dead tuples", [Target(f'topk(10, {sel("caretaker_postgres_dead_tuples")})',
                                         "{{database}}.{{relation}}")], units.Short,
                  limits("PostgresDeadTuplesHigh", also=0), span=6),
            graph("Time since last vacuum", [Target(
                f'topk(10, time() - {sel("caretaker_postgres_last_vacuum_timestamp_seconds")})',
                "{{database}}.{{relation}}")], units.Seconds, no_limits("Manual or auto VACUUM."), span=6),
            graph("SQLite free pages", [Target(sel("caretaker_sqlite_freelist_ratio"), "{{database}}")],
                  units.PercentUnit, no_limits("freelist_count / page_count: space only VACUUM gives back to the "
                                               "file system."), span=6, ratio=True),
        ]),
        ("Integrity", [
            rule_stat("amcheck findings", "PostgresIntegrityError", sel("caretaker_postgres_integrity_errors"),
                      "{{database}}"),
            rule_stat("SQLite quick_check findings", "SQLiteIntegrityError", sel("caretaker_sqlite_integrity_errors"),
                      "{{database}}"),
            rule_stat("Invalid indexes", "PostgresInvalidIndex", sel("caretaker_postgres_invalid_indexes"),
                      "{{database}}"),
            stat_panel("Last amcheck run", f'time() - {sel("caretaker_postgres_integrity_check_timestamp_seconds")}',
                       units.Seconds, no_limits("Age of the last finished amcheck run."), "{{database}}", span=6),
            stat_panel("amcheck run time", sel("caretaker_postgres_integrity_check_duration_seconds"), units.Seconds,
                       no_limits("Duration of the last amcheck run; it grows with the database."), "{{database}}",
                       span=6),
        ]),
        ("Backups", [
            rule_stat("Newest backup age", "BackupStale",
                      f'time() - {sel("caretaker_backup_last_success_timestamp_seconds")}', "{{target}}", span=6),
            rule_stat("Newest backup verified", "BackupVerificationFailed", sel("caretaker_backup_verified"),
                      "{{target}}", span=6),
            graph("Backup size", [Target(sel("caretaker_backup_size_bytes"), "{{target}}")], units.BytesIEC,
                  no_limits(), span=6),
            stat_panel("Backup files", sel("caretaker_backup_files"), units.Short, no_limits(), "{{target}}", span=6),
        ]),
        ("Embeddings", [
            graph("Embedding rows", [Target(f'sum by (app, dimension) ({sel("caretaker_embeddings_rows")})',
                                            "{{app}} {{dimension}}")], units.Short, no_limits(), span=8),
            graph("Embedding size", [Target(f'sum by (app, dimension) ({sel("caretaker_embeddings_size_bytes")})',
                                            "{{app}} {{dimension}}")], units.BytesIEC, no_limits(), span=8),
            rule_stat("Legacy embedding relations", "LegacyEmbeddingsPresent",
                      sel("caretaker_embeddings_legacy_relations"), "{{app}}", span=8),
        ]),
    ]


def _jobs() -> Rows:
    return [
        ("Freshness", [
            rule_graph("Overdue", "JobOverdue", sel("caretaker_job_overdue_seconds"), "{{app}} {{job_name}}"),
            graph("Time since last success", [Target(
                f'time() - {sel("caretaker_job_last_success_timestamp_seconds")}', "{{app}} {{job_name}}")],
                units.Seconds, no_limits()),
            graph("Last run duration", [Target(sel("caretaker_job_last_duration_seconds"), "{{app}} {{job_name}}")],
                  units.Seconds, no_limits()),
            graph("Running for", [Target(sel("caretaker_job_running_seconds"), "{{app}} {{job_name}}")], units.Seconds,
                  no_limits("Runs in progress; a run past its limit counts as stuck.")),
        ]),
        ("Failures", [
            rule_stat("Stuck", "JobStuck", sel("caretaker_job_stuck"), "{{app}} {{job_name}}", span=8),
            rule_graph("Failed runs in the window", "FailedJobsHigh", sel("caretaker_jobs_failed"), "{{app}}",
                       span=8),
            rule_graph("Job error ratio", "JobErrorRateHigh", sel("caretaker_job_error_ratio"), "{{app}}", span=8),
        ]),
        ("Queues", [
            graph("Queue length", [Target(sel("caretaker_queue_length"), "{{app}} {{queue}}")], units.Short,
                  no_limits()),
            rule_graph("Oldest item age (queue time)", "QueueTimeHigh", sel("caretaker_queue_oldest_age_seconds"),
                       "{{app}} {{queue}}"),
        ]),
        ("Content", [
            rule_graph("Items without a usable poster", "PostersMissing", sel("caretaker_posters_missing"),
                       "{{app}} {{kind}}", span=24),
        ]),
        ("Logs", [
            graph("Log lines per second by level", [Target(
                f'sum by (app, level) (rate({sel("caretaker_log_lines_total")}[5m]))', "{{app}} {{level}}")],
                units.CountsPerSecond, no_limits("error, warning, info, debug, and other (no level: stack traces)."),
                span=12),
            graph("Log error ratio", [Target(sel("caretaker_log_error_ratio"), "{{app}}")], units.PercentUnit,
                  no_limits("Error lines / lines with a level, over the logs probe's window."), span=12,
                  ratio=True),
        ]),
    ]


def _services() -> Rows:
    return [
        ("Availability", [
            rule_graph("Up", "ServiceDown", sel("caretaker_service_up"), "{{service}} ({{kind}})", span=8),
            rule_graph("Credentials accepted", "ServiceAuthInvalid", sel("caretaker_service_auth_valid"),
                       "{{service}}", span=8),
            rule_graph("Certificate expires in", "TLSCertificateExpiringSoon",
                       f'{sel("caretaker_tls_certificate_expiry_timestamp_seconds")} - time()', "{{target}}", span=8),
        ]),
        ("Latency and errors", [
            graph("Response time", [Target(sel("caretaker_service_response_seconds"), "{{service}}")],
                  units.Seconds, no_limits(), span=8),
            rule_graph("Error ratio", "ServiceErrorRateHigh", sel("caretaker_service_error_ratio"), "{{service}}",
                       span=8),
            graph("Requests by outcome", [Target(
                f'sum by (service, outcome) (rate({sel("caretaker_service_requests_total")}[15m]))',
                "{{service}} {{outcome}}")], units.RequestsPerSecond,
                no_limits("ok, auth_error, rate_limited, server_error, timeout, network_error."), span=8),
        ]),
        ("Rate limits", [
            graph("Rate-limit headroom", [Target(sel("caretaker_service_rate_limit_remaining"), "{{service}}")],
                  units.Short, no_limits("Requests left in the current window, from the API's headers."), span=12),
            graph("Rate-limited requests", [Target(
                f'sum by (service) (increase({sel("caretaker_service_requests_total", outcome="rate_limited")}[1h]))',
                "{{service}}")], units.Short, no_limits("Probe requests answered 429 in the last hour."), span=12),
        ]),
        ("Probes", [
            rule_graph("Probe success", "ProbeFailing", sel("caretaker_probe_success"), "{{probe}} {{target}}"),
            graph("Probe duration", [Target(sel("caretaker_probe_duration_seconds"), "{{probe}} {{target}}")],
                  units.Seconds, no_limits()),
        ]),
    ]


def _system() -> Rows:
    net = "sum by (device) (rate({}[5m]))"
    return [
        ("CPU and memory", [
            graph("CPU busy", [Target(sel("caretaker_cpu_usage_ratio"), "cpu")], units.PercentUnit, no_limits(),
                  span=8, ratio=True),
            rule_graph("Memory used", "MemoryUsageHigh", sel("caretaker_memory_usage_ratio"), "memory", span=8),
            graph("Memory available", [Target(sel("caretaker_memory_available_bytes"), "available")],
                  units.BytesIEC, no_limits(), span=8),
        ]),
        ("Disks", [
            rule_graph("Disk used per mountpoint", "DiskSpaceHigh", sel("caretaker_disk_usage_ratio"),
                       "{{mountpoint}}"),
            graph("Disk free per mountpoint", [Target(sel("caretaker_disk_free_bytes"), "{{mountpoint}}")],
                  units.BytesIEC, no_limits()),
        ]),
        ("Network", [
            graph("Received", [Target(net.format(sel("caretaker_network_receive_bytes_total")), "{{device}}")],
                  units.BytesPerSecondIEC, no_limits()),
            graph("Sent", [Target(net.format(sel("caretaker_network_transmit_bytes_total")), "{{device}}")],
                  units.BytesPerSecondIEC, no_limits()),
        ]),
    ]


def _alerting() -> Rows:
    return [
        ("Alerts", [
            graph("Firing by severity", [Target(f'sum by (severity) ({sel("caretaker_alerts_firing")})',
                                                "{{severity}}")], units.Short, no_limits(), span=24),
        ]),
        ("Notifications", [
            graph("Sent and failed per hour", [
                Target(f'sum(increase({sel("caretaker_notifications_sent_total")}[1h]))', "sent"),
                Target(f'sum(increase({sel("caretaker_notifications_failed_total")}[1h]))', "failed"),
                Target(f'sum(increase({sel("caretaker_notifications_expired_total")}[1h]))', "expired")],
                units.Short, no_limits("A failed attempt is retried; an expired one was never delivered."), span=8),
            graph("Outbox pending", [Target(sel("caretaker_notification_outbox_pending"), "pending")], units.Short,
                  no_limits(), span=8),
            rule_graph("Oldest undelivered notification", "NotificationsFailing",
                       sel("caretaker_notification_outbox_oldest_seconds"), "oldest", span=8),
        ]),
        ("Actions", [
            graph("Action runs per hour by outcome", [Target(
                f'sum by (action, outcome) (increase({sel("caretaker_action_runs_total")}[1h]))',
                "{{action}} {{outcome}}")], units.Short, no_limits(), span=12),
            graph("Running", [Target(sel("caretaker_action_running"), "{{action}}")], units.Short, no_limits(),
                  span=12),
            table_panel("Last run", [Target(f'time() - {sel("caretaker_action_last_run_timestamp_seconds")}')],
                        units.Seconds, no_limits("Seconds since each action last finished.")),
        ]),
    ]


DASHBOARDS = {  # file stem → (title, rows)
    "overview": ("Caretaker / Overview", _overview),
    "database": ("Caretaker / Database", _database),
    "jobs": ("Caretaker / Jobs & queues", _jobs),
    "services": ("Caretaker / Services", _services),
    "system": ("Caretaker / System", _system),
    "alerting": ("Caretaker / Alerts & actions", _alerting),
}


def build_dashboard(stem: str):
    """The built dashboard model for one file stem of `DASHBOARDS` (uid ``caretaker-<stem>``)."""
    title, rows = DASHBOARDS[stem]
    builder = (
        dashboard.Dashboard(title).uid(f"caretaker-{stem}").tags([TAG]).editable()
        .refresh("1m").time("now-6h", "now").timezone("browser")
        .links([dashboard.DashboardLink("Caretaker").type(DashboardLinkType.DASHBOARDS).tags([TAG])
                .as_dropdown(True).include_vars(True).keep_time(True)])
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(dashboard.QueryVariable("instance").label("Instance").datasource(DS)
                       .query("label_values(caretaker_build_info, instance)")
                       .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).multi(True).include_all(True)
                       .all_value(".*"))
    )
    next_id = 1
    for row_title, panels in rows():
        builder = builder.with_row(dashboard.Row(row_title).id(next_id))
        next_id += 1
        for panel in panels:
            builder = builder.with_panel(panel.id(next_id))
            next_id += 1
    return builder.build()


def render(stem: str) -> str:
    """Deterministic JSON text (sorted keys, fixed ids, trailing newline)."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build_dashboard(stem)) + "\n"


def write_dashboards(out_dir: Path) -> list[Path]:
    """Write ``<stem>.json`` for every dashboard into `out_dir`; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem in DASHBOARDS:
        path = out_dir / f"{stem}.json"
        path.write_text(render(stem), encoding="utf-8")
        paths.append(path)
    return paths
