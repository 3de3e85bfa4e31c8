"""The catalogue of every series Caretaker exports (DESIGN.md §6): type, help text and label names.

One table feeds the exporter's TYPE/HELP lines, the consistency tests and the dashboards; a probe that
emits a name missing here is a bug the tests catch.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "caretaker_"


@dataclass(frozen=True)
class MetricSpec:
    type: str  # "gauge" | "counter" | "info"
    help: str
    labels: tuple[str, ...] = ()


def _g(help_: str, *labels: str) -> MetricSpec:
    return MetricSpec("gauge", help_, labels)


def _c(help_: str, *labels: str) -> MetricSpec:
    return MetricSpec("counter", help_, labels)


_TABLE: dict[str, MetricSpec] = {
    # agent
    "build_info": _g("Caretaker build information; always 1.", "version"),
    "probe_success": _g("1 when the probe's last run succeeded, 0 when it failed or timed out.", "probe", "target"),
    "probe_duration_seconds": _g("Wall time of the probe's last run in seconds.", "probe", "target"),
    # system
    "cpu_usage_ratio": _g("CPU busy fraction over the last probe interval (0..1)."),
    "memory_usage_ratio": _g("Used memory fraction, (total - available) / total."),
    "memory_available_bytes": _g("Memory available for new processes without swapping, in bytes."),
    "disk_usage_ratio": _g("Used fraction of the filesystem as df reports it, used / (used + free).", "mountpoint"),
    "disk_free_bytes": _g("Bytes free for unprivileged users on the filesystem.", "mountpoint"),
    "network_receive_bytes_total": _c("Bytes received on the network interface since boot.", "device"),
    "network_transmit_bytes_total": _c("Bytes sent on the network interface since boot.", "device"),
    # services
    "service_up": _g("1 when the service answered its health check, 0 otherwise.", "service", "kind"),
    "service_auth_valid": _g("1 when the configured credentials were accepted, 0 when rejected.", "service"),
    "service_response_seconds": _g("Response time of the service's last health request in seconds.", "service"),
    "service_requests_total": _c(
        "Probe requests by outcome: ok, auth_error, rate_limited, server_error, timeout, network_error.",
        "service", "outcome"),
    "service_error_ratio": _g("Fraction of probe requests that did not end ok within the error window.", "service"),
    "service_rate_limit_remaining": _g("Requests left in the current rate-limit window, from the API's headers.",
                                       "service"),
    "tls_certificate_expiry_timestamp_seconds": _g("Unix time at which the served TLS certificate expires.",
                                                   "target"),
    # postgres
    "postgres_up": _g("1 when Caretaker could connect and query the database.", "database"),
    "postgres_database_size_bytes": _g("pg_database_size() of the database in bytes.", "database"),
    "postgres_tables": _g("Number of user tables (pg_stat_user_tables rows).", "database"),
    "postgres_relation_size_bytes": _g("pg_total_relation_size() of the relation in bytes.", "database", "relation"),
    "postgres_dead_tuples": _g("n_dead_tup of the relation from pg_stat_user_tables.", "database", "relation"),
    "postgres_dead_tuple_ratio": _g("n_dead_tup / (n_live_tup + n_dead_tup) of the relation.", "database", "relation"),
    "postgres_last_vacuum_timestamp_seconds": _g(
        "Unix time of the last VACUUM (manual or auto) of the relation.", "database", "relation"),
    "postgres_invalid_indexes": _g("Indexes with pg_index.indisvalid = false.", "database"),
    "postgres_integrity_errors": _g("Corruption findings of the last amcheck run.", "database"),
    "postgres_integrity_check_timestamp_seconds": _g("Unix time the last amcheck run finished.", "database"),
    "postgres_integrity_check_duration_seconds": _g("Duration of the last amcheck run in seconds.", "database"),
    "postgres_connections": _g("Backends of the database by pg_stat_activity state.", "database", "state"),
    "postgres_longest_transaction_seconds": _g("Age of the oldest open transaction in seconds.", "database"),
    # sqlite
    "sqlite_size_bytes": _g("Size of the SQLite database file in bytes.", "database"),
    "sqlite_integrity_errors": _g("Rows reported by PRAGMA quick_check other than 'ok'.", "database"),
    "sqlite_freelist_ratio": _g("freelist_count / page_count: the share of unused pages.", "database"),
    # jobs
    "job_last_success_timestamp_seconds": _g("Unix time the job last finished successfully.", "app", "job_name"),
    "job_last_duration_seconds": _g("Duration of the job's last finished run in seconds.", "app", "job_name"),
    "job_overdue_seconds": _g("Seconds past the job's due time plus grace; 0 when on time.", "app", "job_name"),
    "job_running_seconds": _g("Seconds the job's current run has been running.", "app", "job_name"),
    "job_stuck": _g("1 when the job's current run is past its limit.", "app", "job_name"),
    "jobs_failed": _g("Failed job runs within the failure window (default 24h).", "app"),
    "job_error_ratio": _g("Failed / finished job runs within the failure window.", "app"),
    # queues
    "queue_length": _g("Items waiting in the queue.", "app", "queue"),
    "queue_oldest_age_seconds": _g("Age of the oldest waiting item in seconds (queue time).", "app", "queue"),
    # content
    "posters_missing": _g("Items without a usable poster.", "app", "kind"),
    "embeddings_rows": _g("Rows in the embedding relation.", "app", "relation", "dimension"),
    "embeddings_size_bytes": _g("pg_total_relation_size() of the embedding relation in bytes.",
                                "app", "relation", "dimension"),
    "embeddings_legacy_relations": _g("Legacy or inactive-dimension embedding relations that still hold rows.",
                                      "app"),
    # backups
    "backup_last_success_timestamp_seconds": _g("Unix time of the newest valid backup file.", "target"),
    "backup_size_bytes": _g("Size of the newest backup file in bytes.", "target"),
    "backup_files": _g("Backup files matching the target's pattern.", "target"),
    "backup_verified": _g("1 when the newest backup passed verification, 0 when it failed.", "target"),
    # logs
    "log_lines_total": _c("Log lines read from the app's log files, by level.", "app", "level"),
    "log_error_ratio": _g("Share of error-level lines among the lines read in the last window.", "app"),
    # alerting
    "alerts_firing": _g("Alerts currently firing, by severity.", "severity"),
    "notifications_sent_total": _c("Notifications delivered through Apprise."),
    "notifications_failed_total": _c("Notification delivery attempts that failed."),
    "notifications_expired_total": _c("Notifications dropped after their expiry without delivery."),
    "notification_outbox_pending": _g("Notifications waiting in the outbox."),
    "notification_outbox_oldest_seconds": _g("Age of the oldest undelivered notification in seconds."),
    # actions
    "action_runs_total": _c("Action runs by outcome.", "action", "outcome"),
    "action_last_run_timestamp_seconds": _g("Unix time the action last finished.", "action"),
    "action_running": _g("1 while a run of the action is in progress.", "action"),
}

METRICS: dict[str, MetricSpec] = {PREFIX + k: v for k, v in _TABLE.items()}


def spec(name: str) -> MetricSpec:
    """The spec of a full metric name; KeyError names the unknown metric."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not in agent/metrics.py") from None
