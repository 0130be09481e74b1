"""Delivery: the outbox to Customer.io, batched, rate-limited, retried, in per-person order.

``to_outbox_rows`` turns a verdict's operations into outbox rows at commit time; a
``DeliveryWorker`` (a thread, or ``trackguard deliver`` as its own process) sends them.
See ``docs/delivery.md``.
"""

from trackguard.delivery.batching import Rejected, UpstreamRequest, pack
from trackguard.delivery.circuit import Circuit, CircuitPolicy, CircuitState
from trackguard.delivery.convert import to_outbox_rows
from trackguard.delivery.ratelimit import TokenBucket
from trackguard.delivery.transport import (
    ConnectFailed,
    HttpxTransport,
    MockTransport,
    Transport,
    TransportError,
    UpstreamRequestRecord,
    UpstreamResponse,
    UpstreamTimeout,
)
from trackguard.delivery.ulid import new_ulid, ulid_from_key
from trackguard.delivery.worker import (
    DeliveryMetrics,
    DeliveryReport,
    DeliveryWorker,
    MetricsSnapshot,
    UpstreamError,
    upstream_errors,
)

__all__ = [
    "Circuit",
    "CircuitPolicy",
    "CircuitState",
    "ConnectFailed",
    "DeliveryMetrics",
    "DeliveryReport",
    "DeliveryWorker",
    "HttpxTransport",
    "MetricsSnapshot",
    "MockTransport",
    "Rejected",
    "TokenBucket",
    "Transport",
    "TransportError",
    "UpstreamError",
    "UpstreamRequest",
    "UpstreamRequestRecord",
    "UpstreamResponse",
    "UpstreamTimeout",
    "new_ulid",
    "pack",
    "to_outbox_rows",
    "ulid_from_key",
    "upstream_errors",
]
