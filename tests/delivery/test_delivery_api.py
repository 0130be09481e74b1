"""The curated public surface of ``trackguard.delivery`` (changing it is a decision)."""

from __future__ import annotations

import trackguard.delivery as delivery


def test_all_is_pinned_and_sorted() -> None:
    assert delivery.__all__ == [
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
    assert delivery.__all__ == sorted(delivery.__all__)
    assert all(hasattr(delivery, name) for name in delivery.__all__)
