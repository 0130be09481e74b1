"""``backfill --as pipelines:group`` and ``pipelines:alias`` end to end: people, memberships and
merges from CSV files, judged as the gateway's Pipelines door judges them (the contract's
warnings, the plan's identity policy on the userId), delivered by the real gateway's delivery
to the emulator, which ends with the expected objects, relationships and merged people; a
rerun delivers nothing new. On a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from recovery_env import WRITE_KEY, query

from outbox_wait import drain
from trackguard.cli import main
from trackguard.emulator.app import Emulator
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.sqlite import open_store

PLAN_TEXT = """\
version: 1
name: b2b
identity: {canonical: id, email_keyed: reject}
"""
PEOPLE_CSV = """\
user_id,name,signed_up
u-1,Ann,2026-01-01T00:00:00Z
u-2,Bo,2026-01-02T00:00:00Z
u-3,Cy,2026-01-03T00:00:00Z
old-3,Cy (old),2025-06-01T00:00:00Z
"""
PEOPLE_MAP = """\
person: {id: user_id}
timestamp: {column: signed_up}
attributes:
  name: name
"""
MEMBERS_CSV = """\
account_id,kind,user_id,account_name,seats
A-1,2,u-1,Acme,10
A-1,2,u-2,Acme,10
B-7,2,ann@example.com,Beta,3
C-9,team,u-3,Gamma,1
,2,u-1,Nobody,0
"""
MEMBERS_MAP = """\
person: {id: user_id}
group: {id: account_id, object_type: kind}
attributes:
  name: account_name
  seats: {column: seats, type: integer}
"""
ACCOUNTS_CSV = """\
account_id,account_name
D-4,Delta
"""
ACCOUNTS_MAP = """\
group: {id: account_id, object_type: 2}
attributes:
  name: account_name
"""
ALIASES_CSV = """\
user_id,previous_id
u-3,old-3
cy@example.com,u-9
"""
ALIASES_MAP = """\
person: {id: user_id}
previous: {id: previous_id}
"""


@pytest.fixture
def emulator(
    db: str, tmp_path: Path, upstream: tuple[Emulator, RunningServer]
) -> Iterator[Emulator]:
    """The emulator, reset, behind a running gateway whose delivery sends the store's outbox."""
    emu, server = upstream
    emu.reset()
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN_TEXT)
    opts = GatewayOptions(plan=plan, db=db, upstream=server.url, pipelines_upstream=server.url)
    auth = AuthConfig(upstream=Credentials("site", "track-key"), pipelines_key=WRITE_KEY)
    with start_in_thread(create_gateway(opts, auth)):
        yield emu


def _backfill(db: str, tmp_path: Path, name: str, target: str, *extra: str) -> str:
    """Run ``trackguard backfill`` of ``name``.csv with ``name``.map.yaml; its output."""
    args = [
        "backfill", str(tmp_path / f"{name}.csv"), "--as", target,
        "--map", str(tmp_path / f"{name}.map.yaml"), "--plan", str(tmp_path / "plan.yaml"),
        "--db", db, *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    drain(db)
    return " ".join(result.output.split())


def _files(tmp_path: Path, **files: str) -> None:
    for name, text in files.items():
        suffix = ".map.yaml" if name.endswith("_map") else ".csv"
        (tmp_path / (name.removesuffix("_map") + suffix)).write_text(text)


def _calls(emulator: Emulator, kind: str) -> list[dict[str, Any]]:
    return [c["call"] for c in emulator.pipelines.calls_view(type=kind)]


def test_memberships_and_merges_reach_the_workspace_once(
    db: str, emulator: Emulator, tmp_path: Path
) -> None:
    _files(
        tmp_path,
        people=PEOPLE_CSV,
        people_map=PEOPLE_MAP,
        members=MEMBERS_CSV,
        members_map=MEMBERS_MAP,
        accounts=ACCOUNTS_CSV,
        accounts_map=ACCOUNTS_MAP,
        aliases=ALIASES_CSV,
        aliases_map=ALIASES_MAP,
    )
    assert _backfill(db, tmp_path, "people", "pipelines:identify").startswith(
        "4 rows read: 4 accepted, 0 fixed, 0 warned, 0 rejected (quarantined), 0 duplicates,"
    )
    members = _backfill(db, tmp_path, "members", "pipelines:group")
    assert members.startswith(
        "5 rows read: 2 accepted, 0 fixed, 1 warned, 1 rejected (quarantined), 0 duplicates,"
        " 1 skipped in "
    )
    assert members.endswith("row 5 (line 6): group id: column 'account_id' is empty")
    assert _backfill(db, tmp_path, "accounts", "pipelines:group").startswith(
        "1 rows read: 1 accepted, 0 fixed, 0 warned, 0 rejected (quarantined), 0 duplicates,"
    )
    assert _backfill(db, tmp_path, "aliases", "pipelines:alias").startswith(
        "2 rows read: 1 accepted, 0 fixed, 0 warned, 1 rejected (quarantined), 0 duplicates,"
    )

    groups = _calls(emulator, "group")
    assert [{k: v for k, v in c.items() if k != "messageId"} for c in groups] == [
        {"type": "group", "userId": "u-1", "groupId": "A-1",
         "traits": {"name": "Acme", "seats": 10, "objectTypeId": "2"}},
        {"type": "group", "userId": "u-2", "groupId": "A-1",
         "traits": {"name": "Acme", "seats": 10, "objectTypeId": "2"}},
        {"type": "group", "userId": "u-3", "groupId": "C-9",
         "traits": {"name": "Gamma", "seats": 1, "objectTypeId": "team"}},
        {"type": "group", "groupId": "D-4", "traits": {"name": "Delta", "objectTypeId": "2"}},
    ]  # fmt: skip
    (alias,) = _calls(emulator, "alias")
    assert {k: v for k, v in alias.items() if k != "messageId"} == {
        "type": "alias",
        "userId": "u-3",
        "previousId": "old-3",
    }
    ids = [c["messageId"] for c in [*groups, alias]]
    assert len(set(ids)) == 5 and all(i.startswith("backfill-") for i in ids)

    people = {p["cio_id"]: p for p in emulator.state.people_view()}
    assert sorted((p["id"], p["attributes"]["name"]) for p in people.values()) == [
        ("u-1", "Ann"),
        ("u-2", "Bo"),
        ("u-3", "Cy"),  # old-3 merged into u-3, which kept its own name
    ]
    objects = [
        (
            o["object_type_id"],
            o["object_id"],
            o["attributes"],
            sorted(people[m["cio_id"]]["id"] for m in o["people"]),
        )
        for o in emulator.state.objects_view()
    ]
    assert objects == [
        ("2", "A-1", {"name": "Acme", "seats": 10}, ["u-1", "u-2"]),
        ("team", "C-9", {"name": "Gamma", "seats": 1}, ["u-3"]),
        ("2", "D-4", {"name": "Delta"}, []),
    ]
    codes = query(db, "SELECT source, codes FROM quarantine ORDER BY id")
    assert [(s.rsplit(":", 1)[1], c) for s, c in codes] == [
        ("3", '["identity_not_canonical","user_id_email"]'),
        ("2", '["identity_not_canonical","user_id_email"]'),
    ]

    # Read again from row 1: every call is a duplicate, each rejected row is kept once.
    assert _backfill(db, tmp_path, "members", "pipelines:group", "--restart").startswith(
        "5 rows read: 0 accepted, 0 fixed, 0 warned, 1 rejected (quarantined, 1 of them by an"
        " earlier run), 3 duplicates, 1 skipped in "
    )
    assert _backfill(db, tmp_path, "aliases", "pipelines:alias", "--restart").startswith(
        "2 rows read: 0 accepted, 0 fixed, 0 warned, 1 rejected (quarantined, 1 of them by an"
        " earlier run), 1 duplicates, 0 skipped in "
    )
    assert [c["messageId"] for c in [*_calls(emulator, "group"), *_calls(emulator, "alias")]] == ids
    assert len(query(db, "SELECT id FROM quarantine")) == 2


@pytest.mark.parametrize(
    ("target", "mapping", "message"),
    [
        ("pipelines:group", "person: {id: u}\nattributes: {name: n}\n",
         "1:1: group: is required for --as pipelines:group ({id: COLUMN})"),
        ("pipelines:group", "group: {id: g, object_type: 1.5}\n",
         "1:29: group.object_type must be a column name or an object type id such as 2"),
        ("pipelines:group", "group: {id: g, type: t}\n",
         "1:16: group: unknown key 'type'; allowed keys: id, object_type"),
        ("pipelines:group", "group: {id: g, object_type: 3}\nattributes: {objectTypeId: t}\n",
         "2:14: attributes.objectTypeId: group.object_type already sets it"),
        ("pipelines:alias", "person: {id: u}\n",
         "1:1: previous: is required for --as pipelines:alias ({id: COLUMN}, {email: COLUMN}"
         " or {anonymous_id: COLUMN})"),
        ("pipelines:alias", "person: {anonymous_id: a}\nprevious: {id: p}\n",
         "1:9: person: needs exactly one of id: COLUMN or email: COLUMN (an alias call merges"
         " previousId into a userId)"),
        ("pipelines:alias", "person: {id: u}\nprevious: {id: p}\nattributes: {name: n}\n",
         "3:1: attributes: an alias call carries no data; map person: and previous:"),
        ("pipelines:track:x", "person: {id: u}\nprevious: {id: p}\n",
         "2:1: previous: is for --as pipelines:alias"),
    ],
)  # fmt: skip
def test_a_mapping_mistake_is_one_line_with_file_and_line(
    tmp_path: Path, target: str, mapping: str, message: str
) -> None:
    open_store(tmp_path / "tg.db").close()
    (tmp_path / "m.yaml").write_text(mapping)
    (tmp_path / "rows.csv").write_text("u,g\n1,2\n")
    args = ["backfill", str(tmp_path / "rows.csv"), "--as", target,
            "--map", str(tmp_path / "m.yaml"), "--db", str(tmp_path / "tg.db")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == f"Error: {tmp_path / 'm.yaml'}:{message}"
