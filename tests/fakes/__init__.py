"""Local stand-ins for the internet services Caretaker watches (DESIGN.md §5, §12).

Each fake is a FakeServer on 127.0.0.1 with a runtime-switchable `mode`; see base.py for the shared API.
"""
from .apps import FakeAperture, FakeAphrodite, FakeTsundoku
from .base import FakeServer, Reply, Request
from .jellyfin import FakeJellyfin, make_activity, make_task
from .metadata import FakeAniDB, FakeMDBList, FakeOMDb, FakeOpenAI, FakeTMDB, FakeTrakt

__all__ = [
    "FakeAniDB", "FakeAperture", "FakeAphrodite", "FakeJellyfin", "FakeMDBList", "FakeOMDb", "FakeOpenAI",
    "FakeServer", "FakeTMDB", "FakeTrakt", "FakeTsundoku", "Reply", "Request", "make_activity", "make_task",
]
