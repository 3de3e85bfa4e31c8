"""Notification destinations: one Apprise URL each, with optional tags that route by severity.

A config entry is an Apprise URL, optionally prefixed with tags in Apprise's own text-config syntax,
``TAG[, TAG…]=URL`` (LIBRARIES.md B3): ``critical=ntfy://…`` or ``critical, warning=discord://…``.

Routing is ours, not Apprise's: Apprise's `notify(tag=…)` never reaches an untagged URL, and "every alert
to an untagged URL" is what a user expects. So each destination is its own `Apprise` object (which also
gives every destination its own retries and backoff), and a destination receives a severity when it
carries that severity tag, or when it carries none of `critical`, `warning`, `info`. Other tags (``phone``)
only name destinations for ``caretaker notify test --tag phone``.

A destination is named in logs and tables only by Apprise's privacy form, ``url(privacy=True)``, which
masks tokens and passwords; its `id` (a hash of the URL) is what the state file stores.
"""

from __future__ import annotations

import hashlib
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from agent.rules.engine import SEVERITIES

_TAGGED = re.compile(r"^\s*(?P<tags>[A-Za-z0-9_\-][A-Za-z0-9_\-\s,]*?)\s*=\s*(?P<url>[A-Za-z][A-Za-z0-9+.\-]*://.*)$")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]*)://")
# Apprise's body types (NotifyType): what colour/icon a chat service shows.
NOTIFY_TYPES = {"critical": "failure", "warning": "warning", "info": "info", "resolved": "success"}


@contextmanager
def _quiet_apprise() -> Iterator[None]:
    """Apprise logs an unparseable URL in full ("Unparseable URL nope://token@…"): mute it while parsing."""
    logger = logging.getLogger("apprise")
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def _asset() -> Any:
    from apprise import AppriseAsset

    # memory: Apprise writes nothing to disk (LIBRARIES.md B3).
    return AppriseAsset(app_id="Caretaker", app_desc="Caretaker", storage_mode="memory")


@dataclass(eq=False)
class Destination:
    """One Apprise URL. `label` is the privacy form (safe to log); `send` is blocking."""

    id: str
    tags: frozenset[str]
    label: str
    _plugin: Any = field(repr=False)

    @property
    def severities(self) -> frozenset[str]:
        return self.tags & frozenset(SEVERITIES) or frozenset(SEVERITIES)

    def routes(self, severity: str) -> bool:
        return severity in self.severities

    def send(self, title: str, body: str, notify_type: str = "info") -> bool:
        """Deliver one message through Apprise; True on success (`bool(result)`, LIBRARIES.md B3)."""
        from apprise import Apprise, NotifyFormat

        ap = Apprise(asset=_asset())
        ap.add(self._plugin)
        return bool(ap.notify(title=title, body=body, notify_type=notify_type, body_format=NotifyFormat.TEXT))


def split_tags(text: str) -> tuple[frozenset[str], str]:
    """``"critical, phone=ntfy://x"`` → ({critical, phone}, "ntfy://x"); no prefix → (∅, text)."""
    m = _TAGGED.match(text)
    if m is None:
        return frozenset(), text.strip()
    tags = frozenset(t.strip().lower() for t in re.split(r"[\s,]+", m.group("tags")) if t.strip())
    return tags, m.group("url").strip()


def parse_destination(text: str) -> Destination:
    """Parse one config entry. Raises ValueError naming the scheme, never the URL (it holds secrets)."""
    from apprise import Apprise

    tags, url = split_tags(text)
    scheme = _SCHEME.match(url)
    if scheme is None:
        raise ValueError("not an Apprise URL: expected SCHEME://… optionally prefixed by TAGS=")
    with _quiet_apprise():
        plugin = Apprise.instantiate(url, asset=_asset())
    if plugin is None:
        raise ValueError(f"Apprise cannot use this {scheme.group(1)}:// URL (unknown scheme or missing parts); "
                         "see https://github.com/caronc/apprise/wiki")
    label = plugin.url(privacy=True).split("?", 1)[0]
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Destination(digest, tags, label, plugin)


def build_destinations(urls: list[Any]) -> list[Destination]:
    """Destinations from the config's `notify.urls` (SecretStr), in config order."""
    return [parse_destination(u.get_secret_value()) for u in urls]
