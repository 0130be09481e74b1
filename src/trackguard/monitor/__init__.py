"""Monitoring, alerting and data health: per-minute counters, alert rules, notifiers.

``build_monitor(db, rules)`` gives the gateway its ``RequestObserver``; docs/monitoring.md
describes the alert file, the payloads and the commands.
"""

from trackguard.monitor.db import MonitorDB
from trackguard.monitor.loader import RuleError, load_alerts
from trackguard.monitor.monitor import Monitor, build_monitor
from trackguard.monitor.payloads import Notification
from trackguard.monitor.rules import AlertConfig, Channel, Rule

__all__ = [
    "AlertConfig",
    "Channel",
    "Monitor",
    "MonitorDB",
    "Notification",
    "Rule",
    "RuleError",
    "build_monitor",
    "load_alerts",
]
