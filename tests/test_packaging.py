"""Issue 11, newcomer 12: the `graphlib_backport` requirement (DESIGN: the seed card's
`graphlib-backport`, declared for interpreters older than 3.9) installs nothing on any
interpreter flowdsl supports; every other requirement applies to all of them."""

from __future__ import annotations

import configparser
import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]


def options() -> configparser.SectionProxy:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config["options"]


def test_every_supported_python_is_allowed_and_no_other():
    allowed = SpecifierSet(options()["python_requires"])
    assert all(version in allowed for version in SUPPORTED)
    assert "3.9" not in allowed


@pytest.mark.parametrize("version", SUPPORTED)
def test_graphlib_backport_installs_nothing_on_a_supported_python(version):
    requirements = [Requirement(line) for line in options()["install_requires"].splitlines()
                    if line.strip()]
    applies = {r.name for r in requirements
               if r.marker is None or r.marker.evaluate({"python_version": version})}
    assert "graphlib_backport" not in applies
    assert {"attrs", "tenacity", "loguru"} <= applies


def test_graphlib_backport_is_not_installed_here():
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("graphlib_backport")
