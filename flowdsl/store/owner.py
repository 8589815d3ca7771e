"""Who owns a run in progress: (host, pid, process start time), and whether it is gone.

On Linux the start time comes from /proc/<pid>/stat, so a recycled pid is not mistaken for
the owner, and a zombie counts as gone. Where /proc is missing, the pid alone is checked.
"""

from __future__ import annotations

import os
import socket

__all__ = ["identity", "owner_gone"]


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process, or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError:
        return ("?", "")
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces
    return fields[0], fields[19]


def identity() -> tuple[str, int, str]:
    """This process's (host, pid, start time)."""
    pid = os.getpid()
    stat = _stat(pid) if os.path.isdir("/proc") else None
    return socket.gethostname(), pid, stat[1] if stat else ""


def owner_gone(host: str, pid: int, started: str) -> bool | None:
    """True when the owner process is gone, False when it lives, None when it cannot be told
    (another host)."""
    if host != socket.gethostname():
        return None
    if os.path.isdir("/proc"):
        stat = _stat(pid)
        if stat is None:
            return True
        state, start = stat
        return state == "Z" or (bool(started) and start != started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
