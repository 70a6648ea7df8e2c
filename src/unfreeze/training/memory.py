"""Peak memory of a run (resident set on Linux, torch's peak on CUDA), reset at the start of each run so runs
of one study process do not inherit each other's peaks.
"""
from __future__ import annotations




import sys




import torch







def reset_peak_memory() -> None:
    """Start a fresh peak-memory window for this run, so that runs of one study process (local executor) do not
    inherit the peak of the runs before them. Linux: writing 5 to clear_refs resets VmHWM; CUDA: reset stats."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # not Linux (or not allowed): peak_rss_mb falls back to the process lifetime peak
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()



def peak_rss_mb() -> float:
    """Peak resident memory since `reset_peak_memory` (Linux VmHWM), else the process lifetime peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource

        scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, 1)
    except ImportError:  # Windows
        return float("nan")



def peak_gpu_mb() -> float | None:
    """Peak GPU memory allocated by torch since `reset_peak_memory`; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
