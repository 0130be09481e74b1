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

Any other key is an error naming its file, line and column (``config.yaml:3:3: upstream:
unknown key 'api_kye' (did you mean 'api_key'?)``).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import yaml

from trackguard import yamlfile
from trackguard.errors import ConfigError as ConfigError


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


#: The keys a config file may hold, per level: anything else is a typo, reported with its place.
TOP_KEYS: Final = ("upstream", "clients", "metrics_token")
UPSTREAM_KEYS: Final = ("site_id", "api_key")
CLIENT_KEYS: Final = ("source", "site_id", "api_key")


def _str(value: object, where: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise ConfigError(f"{where} must be a non-empty string")
    return str(value)


def _mapping(node: yaml.Node, allowed: tuple[str, ...], source: str, place: str) -> Any:
    """The mapping at ``node`` as Python data; an error at the node for anything else, and at
    each key that is not ``allowed``."""
    if not isinstance(node, yaml.MappingNode):
        raise yamlfile.YAMLFileError(
            [yamlfile.issue_at(source, node, f"{place} must be a mapping")]
        )
    issues = yamlfile.check_keys(node, allowed, source, place)
    if issues:
        raise yamlfile.YAMLFileError(issues)
    return yamlfile.plain(node)


def read_config(config_file: Path) -> dict[str, Any]:
    """The config file as data, every key checked: :class:`~trackguard.yamlfile.YAMLFileError`
    (``file:line:col: message``) for unreadable YAML, a wrong shape or an unknown key."""
    source = str(config_file)
    root = yamlfile.load(config_file, "config file")
    if root is None:
        return {}
    data = _mapping(root, TOP_KEYS, source, "top level")
    for key_node, value_node in root.value:
        if key_node.value == "upstream" and not _null(value_node):
            _mapping(value_node, UPSTREAM_KEYS, source, "upstream")
        if key_node.value == "clients" and not _null(value_node):
            if not isinstance(value_node, yaml.SequenceNode):
                message = "clients must be a list"
                raise yamlfile.YAMLFileError([yamlfile.issue_at(source, value_node, message)])
            for i, item in enumerate(value_node.value):
                _mapping(item, CLIENT_KEYS, source, f"clients[{i}]")
    return cast(dict[str, Any], data)


def _null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def load_auth(config_file: Path | None = None, env: Mapping[str, str] | None = None) -> AuthConfig:
    """Read credentials: the config file first, the environment for what it leaves out."""
    env = os.environ if env is None else env
    data = {} if config_file is None else read_config(config_file)
    upstream = data.get("upstream") or {}
    site_id = upstream.get("site_id") or env.get("TRACKGUARD_SITE_ID")
    api_key = upstream.get("api_key") or env.get("TRACKGUARD_API_KEY")
    if not site_id or not api_key:
        raise ConfigError(
            "set TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY (Customer.io Track API credentials) "
            "in the environment or under upstream: in the config file"
        )
    creds = Credentials(_str(site_id, "upstream.site_id"), _str(api_key, "upstream.api_key"))
    clients: list[ClientKey] = []
    for i, item in enumerate(data.get("clients") or []):
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
