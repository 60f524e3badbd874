"""A token bucket per key: a short burst, then a steady rate.

Buckets live in the process: a member's tabs on one server share one; across
several servers each holds its own, which bounds a flood at burst × servers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(self, *, burst: float, per_second: float, max_keys: int = 100_000) -> None:
        self.burst = burst
        self.per_second = per_second
        self.max_keys = max_keys
        self._buckets: OrderedDict[object, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: object, *, now: float | None = None) -> float:
        """Take one token for `key`: 0.0 if granted, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(tokens=self.burst, updated=now)
                self._buckets[key] = bucket
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
                bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.per_second

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
