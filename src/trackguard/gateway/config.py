"""Gateway credentials and client keys, from the environment or a config file only.

Upstream credentials are ``TRACKGUARD_SITE_ID`` and ``TRACKGUARD_API_KEY``. By default clients
authenticate with those same Basic credentials, so the only change in an app is the host. A
config file may list separate client keys, one per source, so each app has its own key and its
traffic is labelled with its source. Secrets never appear in ``repr`` or logs.

``/metrics`` may ask for a bearer token: ``TRACKGUARD_METRICS_TOKEN`` or ``metrics_token`` in
the config file (the file wins).

Config file (YAML)::

    upstream:
      site_id: "..."          # or leave to TRACKGUARD_SITE_ID
      api_key: "..."          # or leave to TRACKGUARD_API_KEY
    clients:                  # optional; without it clients use the upstream credentials
      - source: web
        site_id: web-site
        api_key: "..."
      - source: backend
        site_id: backend-site
        api_key: "..."
    metrics_token: "..."      # optional; or TRACKGUARD_METRICS_TOKEN
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(Exception):
    """The configuration is missing or malformed; the message says what to fix."""


@dataclass(frozen=True)
class Credentials:
    site_id: str
    api_key: str = field(repr=False)

    def matches(self, site_id: str, api_key: str) -> bool:
        """Constant-time comparison of both parts (no early exit on the site id)."""
        a = hmac.compare_digest(self.site_id.encode(), site_id.encode())
        b = hmac.compare_digest(self.api_key.encode(), api_key.encode())
        return a & b


@dataclass(frozen=True)
class ClientKey:
    source: str
    credentials: Credentials


@dataclass(frozen=True)
class AuthConfig:
    upstream: Credentials
    clients: tuple[ClientKey, ...] = ()
    #: What ``Authorization: Bearer`` must carry for ``/metrics`` (None: no token asked).
    metrics_token: str | None = field(default=None, repr=False)

    def authenticate(self, site_id: str, api_key: str) -> str | None:
        """The source name of matching client credentials, or None.

        Every configured key is compared, so timing does not reveal which one matched.
        """
        if not self.clients:
            return "default" if self.upstream.matches(site_id, api_key) else None
        found: str | None = None
        for client in self.clients:
            if client.credentials.matches(site_id, api_key) and found is None:
                found = client.source
        return found


def _str(value: object, where: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise ConfigError(f"{where} must be a non-empty string")
    return str(value)


def load_auth(config_file: Path | None = None, env: Mapping[str, str] | None = None) -> AuthConfig:
    """Read credentials: the config file first, the environment for what it leaves out."""
    env = os.environ if env is None else env
    data: dict[str, object] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{config_file}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_file}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: the top level must be a mapping")
        data = loaded or {}
    upstream = data.get("upstream") or {}
    if not isinstance(upstream, dict):
        raise ConfigError(f"{config_file}: upstream must be a mapping")
    site_id = upstream.get("site_id") or env.get("TRACKGUARD_SITE_ID")
    api_key = upstream.get("api_key") or env.get("TRACKGUARD_API_KEY")
    if not site_id or not api_key:
        raise ConfigError(
            "set TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY (Customer.io Track API credentials) "
            "in the environment or under upstream: in the config file"
        )
    creds = Credentials(_str(site_id, "upstream.site_id"), _str(api_key, "upstream.api_key"))
    clients_raw = data.get("clients") or []
    if not isinstance(clients_raw, list):
        raise ConfigError(f"{config_file}: clients must be a list")
    clients: list[ClientKey] = []
    for i, item in enumerate(clients_raw):
        if not isinstance(item, dict):
            raise ConfigError(f"{config_file}: clients[{i}] must be a mapping")
        clients.append(
            ClientKey(
                source=_str(item.get("source"), f"clients[{i}].source"),
                credentials=Credentials(
                    _str(item.get("site_id"), f"clients[{i}].site_id"),
                    _str(item.get("api_key"), f"clients[{i}].api_key"),
                ),
            )
        )
    token = data.get("metrics_token", env.get("TRACKGUARD_METRICS_TOKEN") or None)
    if token is not None:
        token = _str(token, "metrics_token")
    return AuthConfig(upstream=creds, clients=tuple(clients), metrics_token=token)
