"""Every endpoint of the gateway's OpenAPI schema, fuzzed from the schema itself.

Schemathesis turns each operation of ``app.openapi()`` into Hypothesis strategies, valid
(positive) and schema-breaking (negative) requests alike, raw bodies included (batches,
roster CSV: declared with ``openapi_extra``). Each request goes to the real uvicorn
gateway, on SQLite and PostgreSQL, with an HSM, an admin token, a terminal of each role,
and data present: a card book, an approved subsidy roster, a confirmed load, a stored
batch. Each request is sent with the credentials it was generated with, with any Latin-1
text as credentials, or with a real token of some role, so the fuzz gets past
authentication as often as not; path parameters and body fields are often the ids of
that data or values that pass the layout checks, so it gets past the lookups too; one
string of a JSON body may end in a lone surrogate, a NUL or a bidi override.

Properties, for every request: no 5xx; a 4xx stores nothing (the row count of every
table is the same after it as before); a response conforms to its declared schema.
``YKT_FUZZ_EXAMPLES`` sets the examples per operation and mode (``make fuzz``: many,
not derandomized), ``YKT_FUZZ_ONLY`` narrows the run to operations whose label has it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from gateway.auth import rotate_token
from gateway.storage import Database
from tests.gateway_fixtures import ADMIN_TOKEN, GatewayServer, start_gateway
from tests.subsidy_kit import (
    DESK,
    HEADER,
    KIOSK_A,
    PEOPLE,
    Centre,
    approve_roster,
    card_for,
    holder_row,
    import_roster,
    roster,
)
from tests.traffic import JournaledTerminal, make_cards

EXAMPLES = int(os.environ.get("YKT_FUZZ_EXAMPLES", "6"))
ONLY = os.environ.get("YKT_FUZZ_ONLY", "")  # fuzz only the operations whose label has this
POS = "310000000001"
SPARE = "310000000099"  # a terminal the fuzz may revoke without losing its own tokens
ROLES = ("kiosk", "issuance", "pos")
# credentials as an outsider may send them: any Latin-1 text (what an HTTP header can carry)
SECRET_HEADERS = ("authorization", "x-admin-token")
HOSTILE_TOKENS = st.text(
    st.characters(codec="latin-1", exclude_categories=("Cc", "Zs")), max_size=40
)
# appended to one string of a JSON body: lone surrogates, NUL, bidi override
HOSTILE_TEXT = ("\ud800", "\udfff", "\x00", "\u202e\u00e9")
CHECKS = [response_schema_conformance]  # 5xx are asserted before, with the request sent


@dataclass
class Stage:
    """The running gateway, a token and a terminal id per role, ids of the data it holds
    (path parameters and body fields), valid values of other body fields, its tables."""

    gw: GatewayServer
    tokens: dict[str, str]
    known: dict[str, list[Any]]
    fields: dict[str, list[Any]]
    terminals: dict[str, str]
    tables: list[str]

    def counts(self) -> dict[str, int]:
        """Row count of every table, in one statement."""
        sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {t})" for t in self.tables)
        with self.gw.db.tx() as cur:
            cur.execute(sql)
            return dict(zip(self.tables, (int(n) for n in cur.fetchone()), strict=True))


def _tables(db: Database) -> list[str]:
    if db.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        sql = (
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    with db.tx() as cur:
        cur.execute(sql)
        return sorted(r[0] for r in cur.fetchall())


def _stored_batch(gw: GatewayServer, token: str, clock: Any, tmp: Any) -> None:
    pos = JournaledTerminal(POS, tmp / "journal.db", clock)
    try:
        for card in make_cards(2):
            clock.advance(seconds=30)
            pos.tap(card, 150)
        records = [row.upload_record() for row in pos.journal.export()]
    finally:
        pos.close()
    body = {"batch_id": "seed", "terminal_id": POS, "records": records}
    r = requests.post(
        gw.url + "/v1/batches",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


@pytest.fixture
def fuzzed_gateway(db: Database, clock: Any, clearing: Any) -> Iterator[GatewayServer]:
    """A gateway with an HSM and a clearing URL (so reconciliation runs), no forwarder."""
    gw = start_gateway(db, clock, clearing_url=clearing.url, forwarders=0)
    yield gw
    gw.server.stop()


@pytest.fixture
def stage(fuzzed_gateway: GatewayServer, clock: Any, tmp_path: Any) -> Iterator[Stage]:
    gateway = fuzzed_gateway
    centre = Centre(gateway, clock)
    records = centre.issue(PEOPLE)
    first = records[0]
    line = f"{holder_row(first)},H18,20000,2026-10"
    rid = int(import_roster(gateway, roster(line))["roster"]["id"])
    approve_roster(gateway, rid)
    kiosk, _ = centre.kiosk(card=card_for(records[1], balance=1_000))
    top = kiosk.top_up(5_000)
    tokens = {
        "kiosk": rotate_token(gateway.db, KIOSK_A),
        "issuance": rotate_token(gateway.db, DESK),
        "pos": gateway.register(POS, "bus-co", role="pos"),
    }
    gateway.register(SPARE, "bus-co", role="pos")
    _stored_batch(gateway, tokens["pos"], clock, tmp_path)
    known = {
        "reference": [top.result.authorization.reference],
        "roster_id": [rid],
        "card_number": [r.card_number for r in records],
        "terminal_id": [SPARE],
    }
    load = top.result.request
    fields = {  # body fields: values that pass the layout checks, so later checks run
        "issuer_id": [load.issuer_id.hex().upper()],
        "card_serial": [load.card_serial.hex().upper()],
        "id_number": [r.holder.id_number for r in records],
        "role": list(ROLES),
        "operator_id": ["bus-co"],
        "action": ["add", "remove"],
    }
    terminals = {"kiosk": KIOSK_A, "issuance": DESK, "pos": POS}
    yield Stage(gateway, tokens, known, fields, terminals, _tables(gateway.db))
    centre.close()


def _auth_headers(case: schemathesis.Case, stage: Stage, role: str | None, hostile: str) -> None:
    """Give the case a real token of ``role``; "hostile": the ``hostile`` text as its
    credentials; None: keep what was generated."""
    if role is None:
        return
    params = {p.name.lower() for p in case.operation.iter_parameters() if p.location == "header"}
    case.headers = dict(case.headers or {})
    if "authorization" in params:
        token = hostile if role == "hostile" else stage.tokens[role]
        case.headers["authorization"] = f"Bearer {token}"
    if "x-admin-token" in params:
        case.headers["x-admin-token"] = hostile if role == "hostile" else ADMIN_TOKEN


def _string_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, str):
        yield path
    elif isinstance(node, list | dict):
        for key, value in enumerate(node) if isinstance(node, list) else node.items():
            yield from _string_paths(value, (*path, key))


def _spice(request: dict[str, Any], spice: tuple[str, int] | None, keep: set[str]) -> None:
    """Append the text to one string of the request's JSON body (the index-th, cyclically),
    so the rest of the body stays as valid as it was generated; fields in ``keep`` (the
    ones ``_known_body`` made valid) are left alone."""
    if spice is None or "json" not in request:
        return
    text, index = spice
    body = request["json"] = copy.deepcopy(request["json"])
    paths = [p for p in _string_paths(body) if not (p and p[-1] in keep)]
    if not paths:
        return
    path = paths[index % len(paths)]
    if not path:  # the body is one string
        request["json"] = body + text
        return
    for key in path[:-1]:
        body = body[key]
    body[path[-1]] += text


def _known_path(case: schemathesis.Case, stage: Stage, pick: int | None) -> None:
    """Replace generated path parameters by ids of data the gateway holds."""
    if pick is None or not case.path_parameters:
        return
    for name in case.path_parameters:
        values = stage.known.get(name)
        if values:
            case.path_parameters[name] = values[pick % len(values)]


def _known_body(case: schemathesis.Case, stage: Stage, role: str | None, pick: int | None) -> None:
    """Put the caller's own (or a fresh) terminal id, known ids and valid field values into
    the body, and a roster header before a generated CSV, so the request gets past the
    layout checks to the ones behind them."""
    if pick is None:
        return
    if isinstance(case.body, str):
        case.body = HEADER + "\n" + case.body
        return
    own = [stage.terminals[role]] if role in stage.terminals else []
    fresh = f"3100000001{pick:02X}"  # a valid id no terminal has yet
    ids = {**stage.known, **stage.fields, "terminal_id": [*own, fresh]}

    def fill(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                fill(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ids and ids[key] and isinstance(value, str):
                    node[key] = ids[key][pick % len(ids[key])]
                else:
                    fill(value)

    fill(case.body)


def _describe(request: dict[str, Any]) -> str:
    """What was sent, short enough to read (credentials by length and start only)."""
    headers = {
        k: f"<{len(v)} chars: {v[:12]!r}...>" if k.lower() in SECRET_HEADERS else v
        for k, v in (request.get("headers") or {}).items()
    }
    body = request.get("json", request.get("data"))
    params = request.get("params")
    return f"{request['method']} {request['url']} {params=} headers={headers} body={body!r:.400}"


def _fuzz(op: schemathesis.APIOperation, mode: GenerationMode, stage: Stage) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize="YKT_FUZZ_EXAMPLES" not in os.environ,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each step is an HTTP call
    )
    @given(
        case=op.as_strategy(generation_mode=mode),
        role=st.sampled_from((None, "hostile", *ROLES)),
        hostile=HOSTILE_TOKENS,
        pick=st.one_of(st.none(), st.integers(0, 7)),
        spice=st.one_of(st.none(), st.tuples(st.sampled_from(HOSTILE_TEXT), st.integers(0, 30))),
    )
    def one(
        case: schemathesis.Case,
        role: str | None,
        hostile: str,
        pick: int | None,
        spice: tuple[str, int] | None,
    ) -> None:
        _auth_headers(case, stage, role, hostile)
        _known_path(case, stage, pick)
        _known_body(case, stage, role, pick)
        before = stage.counts()
        # the spice goes into the request, not the case: schemathesis re-checks an edited
        # case against the schema, and its validator cannot take lone surrogates
        request = case.as_transport_kwargs(base_url=stage.gw.url)
        _spice(request, spice, {*stage.known, *stage.fields, "terminal_id"})
        response = requests.request(**request, timeout=30)
        sent = f"{op.label} {_describe(request)}"
        assert response.status_code < 500, f"{sent}\n-> {response.status_code} {response.text}"
        case.validate_response(response, checks=CHECKS)
        if 400 <= response.status_code < 500:
            after = stage.counts()
            changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
            assert not changed, (
                f"{sent}\n-> {response.status_code} {response.text[:300]} yet stored {changed}"
            )

    one()


def test_every_endpoint_holds_under_fuzzing(stage: Stage) -> None:
    schema = schemathesis.openapi.from_dict(stage.gw.app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    operations = [op for op in operations if ONLY in op.label]
    negated, failures = [], []
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(op, mode, stage)
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
                continue  # every input is a free string (path, header): nothing to break
            except (Exception, FailureGroup) as exc:  # all operations run; all failures count
                failures.append(f"{op.label} ({mode.value}): {exc}")
            if mode is GenerationMode.NEGATIVE:
                negated.append(op.label)
    assert not failures, "\n\n".join(failures)
    if not ONLY:
        assert {"POST /v1/batches", "POST /v1/admin/subsidies/rosters"} <= set(negated)
