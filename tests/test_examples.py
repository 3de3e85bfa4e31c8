"""Every example config validates, with its ${VARS} set and its *_file secrets present."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agent.config import parse_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIGS = sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("profile-"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_validates(path, monkeypatch, tmp_path):
    text = path.read_text()
    for var in set(re.findall(r"\$\{([A-Z0-9_]+)\}", text)):
        monkeypatch.setenv(var, f"value-of-{var.lower()}")
    secret = tmp_path / "secret"
    secret.write_text("token\n")
    text = re.sub(r"(_file:\s*)(/run/secrets/[^\s,}]+)", rf"\g<1>{secret}", text)
    monkeypatch.chdir(EXAMPLES.parent)  # profile paths in examples are relative to the repository
    cfg = parse_config(yaml.safe_load(text))
    assert cfg.agent.listen


def test_aperture_jellyfin_example_covers_the_stack(monkeypatch, tmp_path):
    text = (EXAMPLES / "aperture-jellyfin.yaml").read_text()
    for var in set(re.findall(r"\$\{([A-Z0-9_]+)\}", text)):
        monkeypatch.setenv(var, "x")
    secret = tmp_path / "s"
    secret.write_text("t")
    cfg = parse_config(yaml.safe_load(text.replace("/run/secrets/caretaker", str(secret))))
    assert [d.profile for d in cfg.databases] == ["aperture"]
    assert {s.kind for s in cfg.services} >= {"jellyfin", "aperture", "tmdb"}
    assert cfg.notify.urls and cfg.rules["DiskSpaceHigh"].threshold == 0.85
