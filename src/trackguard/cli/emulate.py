"""``trackguard emulate``: a strict local Customer.io Track API for integration tests and demos.

Secrets never travel as options (they would show in ``ps`` and shell history): the site id and
API key come from ``TRACKGUARD_SITE_ID``/``TRACKGUARD_API_KEY`` or a ``--config`` file.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any, cast

import click
import yaml

from trackguard import yamlfile
from trackguard.cli.base import TrackguardCommand
from trackguard.cli.options import (
    Seconds,
    listen_errors,
    listen_option,
    resolve,
    tls_options,
    tls_pair,
)
from trackguard.emulator.app import create_emulator
from trackguard.emulator.faults import FaultConfigError
from trackguard.errors import ConfigError
from trackguard.http.runner import run

DEFAULT_LISTEN = "127.0.0.1:8090"


#: The keys an emulator config file may hold.
CONFIG_KEYS = ("site_id", "api_key")


def _read_config(config: Path) -> dict[str, Any]:
    """A YAML or TOML config file as data; its problems (with file:line:col for YAML, and a
    suggestion for a misspelled key) as :class:`~trackguard.errors.ConfigError`."""
    if config.suffix != ".toml":
        root = yamlfile.load(config, "config file")
        if root is None:
            return {}
        if not isinstance(root, yaml.MappingNode):
            message = "expected a mapping with site_id and api_key"
            raise yamlfile.YAMLFileError([yamlfile.issue_at(str(config), root, message)])
        issues = yamlfile.check_keys(root, CONFIG_KEYS, str(config))
        if issues:
            raise yamlfile.YAMLFileError(issues)
        return cast(dict[str, Any], yamlfile.plain(root))
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {config}: {exc}") from None
    for key in data:
        if key not in CONFIG_KEYS:
            raise ConfigError(f"{config}: {yamlfile.unknown_key(key, CONFIG_KEYS)}")
    return data


def load_credentials(config: Path | None) -> tuple[str, str]:
    """Site id and API key: a ``--config`` file's values first, then the environment."""
    data = {} if config is None else _read_config(config)
    site_id = data.get("site_id") or os.environ.get("TRACKGUARD_SITE_ID")
    api_key = data.get("api_key") or os.environ.get("TRACKGUARD_API_KEY")
    if not site_id or not api_key:
        raise click.UsageError(
            "set TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY, or give --config FILE "
            "with site_id and api_key (secrets are never taken as options)"
        )
    return str(site_id), str(api_key)


@click.command(name="emulate", cls=TrackguardCommand)
@listen_option(DEFAULT_LISTEN)
@tls_options
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append every Track request to this JSONL request log.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML or TOML file with site_id and api_key.",
)
@click.option("--fail-status", type=click.IntRange(400, 599), help="Status faults answer.")
@click.option(
    "--fail-rate", type=click.FloatRange(0, 1), help="Share of requests to fail (0 to 1)."
)
@click.option("--latency-ms", type=click.IntRange(0, 60_000), default=0, help="Delay every answer.")
@click.option(
    "--outage-seconds",
    type=Seconds(min=0),
    help="Fail every request for this long from start-up.",
)
@click.option(
    "--retry-after", type=click.IntRange(min=0), help="Retry-After seconds sent with faults."
)
@click.option("--seed", type=int, help="Seed for --fail-rate, for repeatable runs.")
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="warning",
    show_default=True,
    help="Server log level (info logs every request).",
)
def emulate_command(
    listen: tuple[str, int],
    tls_cert: Path | None,
    tls_key: Path | None,
    record: Path | None,
    config_path: Path | None,
    fail_status: int | None,
    fail_rate: float | None,
    latency_ms: int,
    outage_seconds: float | None,
    retry_after: int | None,
    seed: int | None,
    log_level: str,
) -> None:
    """Serve a strict local Customer.io Track API that keeps what it accepts in memory.

    Same routes, auth, limits, error bodies and 207s as Customer.io; people, devices and
    events are readable under /_emulator/ (see docs/emulator.md), and faults can be injected
    with the options below or POST /_emulator/faults. Credentials come from
    TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY, or --config.

    Example:

    \b
        export TRACKGUARD_SITE_ID=site TRACKGUARD_API_KEY=key
        trackguard emulate --listen 127.0.0.1:8090 --record requests.jsonl
        curl -u site:key -X PUT localhost:8090/api/v1/customers/42 -d '{"plan":"pro"}'
        curl localhost:8090/_emulator/people/42
        trackguard emulate --tls-cert cert.pem --tls-key key.pem --fail-status 503 \\
            --fail-rate 0.2 --seed 7 --latency-ms 50
    """
    host, port = listen
    tls_pair(tls_cert, tls_key)
    resolve(host, port)
    site_id, api_key = load_credentials(config_path)
    faults: dict[str, Any] = {"latency_ms": latency_ms}
    for key, value in (
        ("status", fail_status),
        ("rate", fail_rate),
        ("retry_after", retry_after),
        ("seed", seed),
    ):
        if value is not None:
            faults[key] = value
    if outage_seconds is not None:
        faults["outage"] = {"seconds": outage_seconds}
    try:
        emulator = create_emulator(site_id, api_key, record=record, faults=faults)
    except FaultConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.UsageError(f"cannot open --record file: {exc}") from None

    def ready(url: str) -> None:
        click.echo(f"trackguard emulator listening on {url}")
        sys.stdout.flush()

    try:
        with listen_errors(host, port):
            run(
                emulator,
                host,
                port,
                tls_cert=tls_cert,
                tls_key=tls_key,
                log_level=log_level,
                ready=ready,
            )
    finally:
        emulator.close()
