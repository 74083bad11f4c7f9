"""The service's counters and gauges, and ``/metrics`` in the Prometheus text format (version 0.0.4).

:class:`Metrics` is thread-safe (the analysis workers count windows, the event loop counts frames)
and renders itself with :meth:`Metrics.render`; per-call gauges (lag, queued audio) are passed in
at render time by the registry, which knows the active calls. Every series is prefixed ``ser_``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

#: Buckets of the window-latency histogram (seconds from a window's last audio to its final event).
LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)

_HELP = {
    "ser_calls_started_total": ("counter", "Calls accepted, by protocol."),
    "ser_calls_finished_total": ("counter", "Calls finalised, by status (completed, ended_abruptly)."),
    "ser_calls_rejected_total": ("counter", "Connections refused, by reason."),
    "ser_frames_received_total": ("counter", "Audio messages received (Twilio media messages, raw binary frames)."),
    "ser_frames_rejected_total": ("counter", "Messages rejected with an error event, by error code."),
    "ser_frames_dropped_total": ("counter", "Audio frames (or parts) arriving after their time was already analysed, by reason."),
    "ser_audio_seconds_total": ("counter", "Seconds of call audio received (per channel)."),
    "ser_windows_total": ("counter", "Windows whose final result was published."),
    "ser_segments_total": ("counter", "Segments published (when their speech region closed)."),
    "ser_alerts_total": ("counter", "Alerts raised, by kind."),
    "ser_backpressure_pauses_total": ("counter", "Times a call's audio queue was full and its socket stopped being read."),
    "ser_subscribers_dropped_total": ("counter", "Event subscribers disconnected for reading too slowly."),
}


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (``/proc/PID/stat``; this process by default; 0 if unknown)."""
    try:
        with open(f"/proc/{pid or 'self'}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process in bytes (``/proc/PID/statm``; this process by default; 0 where unavailable)."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Metrics:
    """Counters (by name and labels), a window-latency histogram and a windows-per-second rate."""

    def __init__(self, *, rate_window_s: float = 10.0):
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple], float] = {}
        self._latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0
        self._window_times: deque[float] = deque()
        self._rate_window = rate_window_s
        self.started = time.time()

    def inc(self, name: str, value: float = 1.0, **labels) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0.0) + value

    def get(self, name: str, **labels) -> float:
        """A counter's value (0 if never counted); with no labels, the sum over all label values."""
        with self._lock:
            if labels:
                return self._counters.get((name, tuple(sorted(labels.items()))), 0.0)
            return sum(v for (n, _), v in self._counters.items() if n == name)

    def windows(self, count: int, latencies: list[float]) -> None:
        """Count ``count`` published windows, with the latencies (seconds) of those that have one."""
        now = time.monotonic()
        with self._lock:
            self._counters[("ser_windows_total", ())] = self._counters.get(("ser_windows_total", ()), 0.0) + count
            self._window_times.extend([now] * count)
            for lat in latencies:
                i = next((k for k, b in enumerate(LATENCY_BUCKETS) if lat <= b), len(LATENCY_BUCKETS))
                self._latency[i] += 1
                self._latency_sum += lat
                self._latency_count += 1

    def windows_per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._window_times and self._window_times[0] < now - self._rate_window:
                self._window_times.popleft()
            return len(self._window_times) / self._rate_window

    def render(self, *, active_calls: int, calls: list[dict], subscribers: int, workers: list[dict] | None = None) -> str:
        """The Prometheus text exposition: counters, gauges and per-call ``lag`` and ``queued`` audio.

        ``calls``: one dict per active call with ``call_id``, ``lag_s`` and ``queued_s``; ``workers``:
        one per analysis worker process with ``worker``, ``calls``, ``rss_bytes`` and ``cpu_s``.
        """
        workers = workers or []
        lines: list[str] = []

        def gauge(name: str, help_: str, rows: list[tuple[dict, float]]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} gauge")
            lines.extend(f"{name}{_labels(lab)} {value:.6g}" for lab, value in rows)

        gauge("ser_active_calls", "Calls whose audio is arriving now.", [({}, active_calls)])
        gauge(
            "ser_windows_per_second", "Final windows published per second, over the last 10 s.", [({}, self.windows_per_second())]
        )
        gauge(
            "ser_call_lag_seconds",
            "Per active call: how long its oldest audio not yet analysed has waited (0 when caught up).",
            [({"call_id": c["call_id"]}, c["lag_s"]) for c in calls],
        )
        gauge(
            "ser_call_queued_audio_seconds",
            "Per active call: seconds of audio received and waiting for analysis.",
            [({"call_id": c["call_id"]}, c["queued_s"]) for c in calls],
        )
        gauge("ser_event_subscribers", "Open event WebSockets (/events and /calls/{id}/events).", [({}, subscribers)])
        gauge("ser_process_resident_memory_bytes", "Resident memory of the service process.", [({}, rss_bytes())])
        gauge("ser_process_cpu_seconds", "CPU seconds (user + system) used by the service process.", [({}, cpu_seconds())])
        gauge("ser_worker_calls", "Calls per analysis worker process.", [({"worker": w["worker"]}, w["calls"]) for w in workers])
        gauge(
            "ser_worker_resident_memory_bytes",
            "Resident memory per analysis worker process.",
            [({"worker": w["worker"]}, w["rss_bytes"]) for w in workers],
        )
        gauge(
            "ser_worker_cpu_seconds",
            "CPU seconds per analysis worker process.",
            [({"worker": w["worker"]}, w["cpu_s"]) for w in workers],
        )
        gauge("ser_uptime_seconds", "Seconds since the service started.", [({}, time.time() - self.started)])
        with self._lock:
            counters = dict(self._counters)
            buckets, total, count = list(self._latency), self._latency_sum, self._latency_count
        for name, (kind, help_) in _HELP.items():
            rows = [(dict(lab), v) for (n, lab), v in counters.items() if n == name]
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{_labels(lab)} {value:.10g}" for lab, value in sorted(rows, key=lambda r: sorted(r[0].items())))
            if not rows and name in ("ser_windows_total", "ser_audio_seconds_total", "ser_backpressure_pauses_total"):
                lines.append(f"{name} 0")
        name = "ser_window_latency_seconds"
        lines.append(f"# HELP {name} Seconds from the arrival of a window's last audio to its final event.")
        lines.append(f"# TYPE {name} histogram")
        running = 0
        for b, n in zip(LATENCY_BUCKETS, buckets, strict=False):
            running += n
            lines.append(f'{name}_bucket{{le="{b}"}} {running}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {count}')
        lines.append(f"{name}_sum {total:.6f}")
        lines.append(f"{name}_count {count}")
        return "\n".join(lines) + "\n"
