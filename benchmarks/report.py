"""Writing a benchmark module's closing table: to the terminal and to .benchmarks/."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_section(terminalreporter: Any, config: Any, title: str, lines: list[str],
                  filename: str) -> None:
    """Print ``lines`` under ``title`` at the end of the session and keep a copy in
    ``benchmarks/.benchmarks/<filename>``."""
    if not lines:
        return
    terminalreporter.section(title)
    for line in lines:
        terminalreporter.write_line(line)
    out = Path(str(config.rootpath)) / ".benchmarks" / filename
    try:
        out.parent.mkdir(exist_ok=True)
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        terminalreporter.write_line(f"(also written to {out})")
    except OSError:
        pass
