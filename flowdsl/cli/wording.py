"""Library messages, reworded for the command line: the options a shell user types
(``--force``, ``--resume RUN_ID``, ``--target ID``) instead of Python keywords."""

from __future__ import annotations

import re

__all__ = ["cli_wording"]

_TARGET_LIST = re.compile(r"targets=\[([^\]]*)\]")
_ITEM = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_REWORDINGS = [
    (re.compile(r"force=True(?: \(--force\))?"), "--force"),
    (re.compile(r"resume=(['\"])(.*?)\1"), r"--resume \2"),
    (re.compile(r"\bresume= "), "--resume RUN_ID "),
    (re.compile(r"targets=None"), "no --target"),
    (re.compile(r"\btargets=(?= )"), "--target"),
    (re.compile(r"another run_id\b"), "another --run-id"),
    (re.compile(r"pass the same inputs"), "pass the same inputs (--set, --input)"),
    (re.compile(r"\bpass store="), "pass --store"),
]


def _targets(match: re.Match[str]) -> str:
    items = [a if a else b for a, b in _ITEM.findall(match.group(1))]
    return " ".join(f"--target {item}" for item in items) if items else "no --target"


def cli_wording(message: str) -> str:
    """``message`` with the library's keyword spellings replaced by the CLI's options."""
    message = _TARGET_LIST.sub(_targets, message)
    for pattern, replacement in _REWORDINGS:
        message = pattern.sub(replacement, message)
    return message
