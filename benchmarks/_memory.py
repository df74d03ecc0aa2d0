"""Peak resident memory of this process, for the benchmarks (Linux)."""

from __future__ import annotations


def peak_rss_mb() -> float:
    """VmHWM in MB: the most resident memory this process has held; nan where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
