"""A process's resident memory, read from /proc (Linux): what (g) compares."""

from __future__ import annotations


def rss_bytes(pid: int | str = "self", field: str = "VmHWM") -> int:
    """`field` of the process's status in bytes: VmHWM its peak resident set, VmRSS its
    resident set now; 0 when it can not be read (the process gone, not Linux)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
