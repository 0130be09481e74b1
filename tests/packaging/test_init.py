"""``trackguard init DIR`` and the example files shipped in the package."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from trackguard.bundled import EXAMPLE_PLAN, EXAMPLES, STARTER_FILES
from trackguard.cli import main
from trackguard.gateway.config import load_auth
from trackguard.monitor.loader import load_alerts
from trackguard.plan.loader import load_plan

REPO = Path(__file__).resolve().parents[2]
ENV = {"SLACK_WEBHOOK_URL": "https://hooks.example/T1", "PAGERDUTY_ROUTING_KEY": "rk"}


def init(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["init", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_the_package_ships_the_repository_examples() -> None:
    """One copy of each example: the package's examples are the repository's examples/."""
    shipped = {p.name: p.read_bytes() for p in EXAMPLES.iterdir() if p.is_file()}
    repo = {p.name: p.read_bytes() for p in (REPO / "examples").iterdir() if p.is_file()}
    assert shipped == repo
    assert {"d2c-plan.yaml", "alerts.yaml", "trackguard.yaml"} <= set(shipped)
    assert load_plan(EXAMPLE_PLAN).name == "d2c-store"


def test_init_writes_a_starter_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "guard"
    code, out, err = init(target)
    assert (code, err) == (0, "")
    assert out.splitlines()[:3] == [
        f"wrote {target / 'plan.yaml'}",
        f"wrote {target / 'alerts.yaml'}",
        f"wrote {target / 'trackguard.yaml'}",
    ]
    assert sorted(p.name for p in target.iterdir()) == [
        "alerts.yaml",
        "plan.yaml",
        "trackguard.yaml",
    ]
    for name, source in STARTER_FILES.items():
        assert (target / name).read_bytes() == source.read_bytes()
    assert load_plan(target / "plan.yaml").name == "d2c-store"
    assert len(load_alerts(target / "alerts.yaml", env=ENV).rules) >= 1
    auth = load_auth(
        target / "trackguard.yaml", env={"TRACKGUARD_SITE_ID": "s", "TRACKGUARD_API_KEY": "k"}
    )
    assert (auth.upstream.site_id, auth.clients) == ("s", ())


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "alerts.yaml").write_text("mine\n")
    code, out, err = init(tmp_path)
    assert (code, out) == (2, "")
    assert err == (
        f"Error: {tmp_path / 'alerts.yaml'} already exists; nothing written"
        " (use --force to overwrite)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.yaml"]
    assert (tmp_path / "alerts.yaml").read_text() == "mine\n"


def test_init_force_overwrites(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text("mine\n")
    code, _, err = init(tmp_path, "--force")
    assert (code, err) == (0, "")
    assert (tmp_path / "plan.yaml").read_bytes() == EXAMPLE_PLAN.read_bytes()


def test_init_into_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    code, out, err = init(tmp_path / "taken")
    assert (code, out) == (2, "")
    assert err == f"Error: {tmp_path / 'taken'} is not a directory\n"
