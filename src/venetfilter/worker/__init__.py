"""The NFQUEUE worker: gives every queued container packet venet's verdict."""

from __future__ import annotations

from ..config.notify import request
from ..errors import QueueBindError
from .queue_stats import QueueStats, read_queue_stats
from .service import Worker, WorkerOptions

__all__ = ["QueueBindError", "QueueStats", "Worker", "WorkerOptions", "read_queue_stats", "request"]
