"""Delivery through real Apprise to local receivers: a json:// HTTP endpoint and a mailto:// SMTP server."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from alerting_harness import Harness
from pgcluster import free_port
from receivers import JsonReceiver, SmtpReceiver
from typer.testing import CliRunner

from agent.cli import app
from agent.config import ConfigError, parse_config
from agent.samples import sample

FAST = {"DiskSpaceHigh": {"for": "0s"}}


def test_json_and_mail_receive_firing_and_resolved(tmp_path):
    async def main(rx, smtp):
        h = Harness(tmp_path, rules=FAST, apprise=True,
                    notify={"urls": [rx.apprise_url("/ops"), smtp.apprise_url()], "group_window": "0s"})
        h.feed("disk", sample("caretaker_disk_usage_ratio", 0.91, mountpoint="/"))
        await h.round()
        h.feed("disk", sample("caretaker_disk_usage_ratio", 0.70, mountpoint="/"))
        await h.round(advance=300)

    with JsonReceiver() as rx, SmtpReceiver() as smtp:
        asyncio.run(main(rx, smtp))
        posted = rx.wait_for(2)
        mails = smtp.wait_for(2)
    assert [(m["title"], m["type"]) for m in posted] == [
        ("[FIRING:1] DiskSpaceHigh on box", "warning"), ("[RESOLVED] DiskSpaceHigh on box", "success")]
    assert posted[0]["message"].splitlines()[:3] == [
        "FIRING DiskSpaceHigh (warning): Filesystem / is 91.0% full",
        posted[0]["message"].splitlines()[1],
        "labels: mountpoint=/"]
    assert re.fullmatch(r"value 91\.0% > 80\.0% since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(0s ago\)",
                        posted[0]["message"].splitlines()[1])
    assert "value 70.0% (fires > 80.0%, clears when not > 75.0%)" in posted[1]["message"]
    assert [m["Subject"] for m in mails] == [m["title"] for m in posted]
    assert [m["To"] for m in mails] == ["ops@example.org"] * 2
    assert SmtpReceiver.text(mails[0]).replace("\r\n", "\n").strip() == posted[0]["message"].strip()


def test_storm_of_50_alerts_within_a_second_is_at_most_two_messages_per_route(tmp_path):
    async def main(rx):
        h = Harness(tmp_path, apprise=True, notify={"urls": [rx.apprise_url("/chat"),
                                                              rx.apprise_url("/phone", tags="warning")]})
        for batch in range(5):  # 5 probe rounds, 0.2 s apart, 10 new alerts each
            h.feed(f"queues{batch}", *[sample("caretaker_queue_oldest_age_seconds", 900, app="aperture",
                                              queue=f"q{batch * 10 + i:02d}") for i in range(10)])
            await h.round(advance=0.2 if batch else 0.0)
        await h.round(advance=30)  # the group window after the first message
        await h.round(advance=600)  # nothing more to say

    with JsonReceiver() as rx:
        asyncio.run(main(rx))
        for path in ("/chat", "/phone"):
            messages = rx.received(path)
            assert [m["title"] for m in messages] == ["[FIRING:10] QueueTimeHigh on box",
                                                      "[FIRING:40] QueueTimeHigh on box"]
            named = re.findall(r"queue=(q\d\d)", "\n".join(m["message"] for m in messages))
            assert sorted(named) == [f"q{i:02d}" for i in range(50)]


def test_failed_delivery_logs_only_the_privacy_form_of_the_url(tmp_path, caplog):
    secret = "s3cr3t-pass"

    async def main():
        h = Harness(tmp_path, rules=FAST, apprise=True,
                    notify={"urls": [f"json://alice:{secret}@127.0.0.1:{free_port()}/hook"]})
        h.feed("disk", sample("caretaker_disk_usage_ratio", 0.91, mountpoint="/"))
        await h.round()
        return h

    with caplog.at_level(logging.DEBUG):
        logging.getLogger("apprise").setLevel(logging.DEBUG)  # even Apprise's own debug lines
        try:
            h = asyncio.run(main())
        finally:
            logging.getLogger("apprise").setLevel(logging.WARNING)
    assert h.metric("caretaker_notifications_failed_total") == 1
    assert "to json://alice:****@127.0.0.1:" in caplog.text
    assert secret not in caplog.text


def test_bad_apprise_url_is_a_config_error_naming_the_field_not_the_url():
    with pytest.raises(ConfigError) as exc:
        parse_config({"notify": {"urls": ["json://127.0.0.1/ok", "nope://token-123@host"]}})
    (line,) = exc.value.errors
    assert line.startswith("notify.urls[1]: ") and "nope://" in line and "token-123" not in line


def test_notify_test_reports_each_destination(tmp_path):
    with JsonReceiver() as rx:
        config = tmp_path / "c.yaml"
        config.write_text(
            f'agent: {{state_dir: "{tmp_path}"}}\n'
            f'notify:\n  urls:\n    - "{rx.apprise_url("/ok", tags="phone")}"\n'
            f'    - "critical=json://bob:hunter2@127.0.0.1:{free_port()}/down"\n')
        result = CliRunner().invoke(app, ["notify", "test", "--config", str(config)])
        assert result.exit_code == 1, result.output
        assert re.search(r"json://127\.0\.0\.1:\d+/ok\s+│ phone\s+│ sent", result.output)
        assert re.search(r"json://bob:\*\*\*\*@127\.0\.0\.1:\d+/down\s+│ critical\s+│ failed", result.output)
        assert "hunter2" not in result.output
        (message,) = rx.received("/ok")
        assert message["title"].startswith("[TEST] Caretaker on ")

        only = CliRunner().invoke(app, ["notify", "test", "--tag", "phone", "--config", str(config)])
        assert only.exit_code == 0 and "/down" not in only.output
        assert len(rx.received("/ok")) == 2
        none = CliRunner().invoke(app, ["notify", "test", "--tag", "pager", "--config", str(config)])
        assert none.exit_code == 2
