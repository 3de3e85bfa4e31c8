"""Logging setup: one line per event on stderr, no secrets (values are never logged, only field names)."""

from __future__ import annotations

import logging


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        force=True)
    # httpx logs every request URL, which can carry an API key in its query string (OMDb, MDBList).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
