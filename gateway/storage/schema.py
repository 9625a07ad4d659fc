"""The gateway's schema as numbered migrations, written once for SQLite and PostgreSQL.

``{id}`` becomes an auto-increment key and ``{big}`` a 64-bit integer in each dialect;
everything else is SQL both accept. Server times are epoch milliseconds (BIGINT), card
times ISO text as the terminal sent them, money BIGINT fen.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from gateway.campus import schema as campus_schema
from gateway.storage.db import POSTGRES, Cursor
from terminal.record import EC_PURCHASE, QR_RIDE, RecordKind

log = logging.getLogger("gateway.storage")

# The txn table holds the transaction record's fields (terminal/record.py) and these of the
# gateway's own; tests/terminal/test_record.py checks the table against both.
TXN_GATEWAY_COLUMNS = ("id", "operator_id", "content_hash", "batch_id", "received_at")
# the table of each kind after purchases (whose table is txn), by record kind name
KIND_TABLES = {EC_PURCHASE.name: "ec_txn", QR_RIDE.name: "qr_txn"}


def kind_table(kind: RecordKind) -> str:
    """The table of a record kind after purchases: the record's fields (terminal/record.py)
    and the gateway's own (``TXN_GATEWAY_COLUMNS``), unique by the record's identity."""
    columns = ",\n    ".join(
        f"{f.name} {'{big}' if f.type in (int, bool) else 'TEXT'}"
        + ("" if f.nullable else " NOT NULL")
        for f in kind.fields
    )
    return (
        f"CREATE TABLE {KIND_TABLES[kind.name]} (\n    id {{id}},"
        "\n    operator_id TEXT NOT NULL,\n    "
        + columns
        + ",\n    content_hash TEXT NOT NULL,\n    batch_id TEXT NOT NULL,"
        "\n    received_at {big} NOT NULL,\n"
        f"    UNIQUE ({', '.join(kind.identity)})\n);\n"
    )


# Rides whose code an earlier stored ride already held, taken out of qr_txn by migration 13
# (uploads raced before the unique index): the ride as stored, the ride kept, why and when.
QR_QUARANTINE = """
CREATE TABLE IF NOT EXISTS qr_txn_quarantine (
    id              {id},
    ride_id         {big} NOT NULL UNIQUE,
    kept_id         {big} NOT NULL,
    terminal_id     TEXT NOT NULL,
    qr_seq          {big} NOT NULL,
    code_hash       TEXT NOT NULL,
    amount          {big} NOT NULL,
    txn_time        TEXT NOT NULL,
    record          TEXT NOT NULL,
    clearing        TEXT,
    clearing_reason TEXT,
    reason          TEXT NOT NULL,
    quarantined_at  {big} NOT NULL
);
"""
_QR_COLUMNS = (
    "id",
    "operator_id",
    *(f.name for f in QR_RIDE.fields),
    "content_hash",
    "batch_id",
    "received_at",
)


def _ride_code_once(cur: Cursor, dialect: str, now_ms: int) -> None:
    """Migration 13: keep the earliest stored ride of each code, quarantine the later ones
    (stored by uploads that raced before this index existed), then index the code unique."""
    _run(cur, dialect, QR_QUARANTINE)
    cur.execute(
        f"SELECT {', '.join('q.' + c for c in _QR_COLUMNS)}, k.kept, kq.terminal_id, kq.qr_seq,"
        " o.outcome, o.reason FROM qr_txn q"
        " JOIN (SELECT code_hash, MIN(id) AS kept FROM qr_txn GROUP BY code_hash"
        "       HAVING COUNT(*) > 1) k ON q.code_hash = k.code_hash"
        " JOIN qr_txn kq ON kq.id = k.kept"
        " LEFT JOIN outbox o ON o.kind = ? AND o.ref_id = q.id"
        " WHERE q.id <> k.kept ORDER BY q.id",
        (QR_RIDE.name,),
    )
    moved = []
    for row in cur.fetchall():
        ride = dict(zip(_QR_COLUMNS, row[: len(_QR_COLUMNS)], strict=True))
        kept, kept_terminal, kept_seq, outcome, outcome_reason = row[len(_QR_COLUMNS) :]
        why = (
            f"its code was stored first as ride {kept} (terminal {kept_terminal} qr_seq"
            f" {kept_seq}) by an upload that raced this one: a ride code pays one ride"
        )
        moved.append((ride, kept, outcome, outcome_reason, why))
    cur.executemany(
        "INSERT INTO qr_txn_quarantine (ride_id, kept_id, terminal_id, qr_seq, code_hash,"
        " amount, txn_time, record, clearing, clearing_reason, reason, quarantined_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (r["id"], kept, r["terminal_id"], r["qr_seq"], r["code_hash"], r["amount"],
             r["txn_time"], json.dumps(r, sort_keys=True, ensure_ascii=False), outcome,
             reason, why, now_ms)
            for r, kept, outcome, reason, why in moved
        ],
    )  # fmt: skip
    # a ride not yet posted is not posted at all: its outbox row is closed as quarantined
    cur.executemany(
        "UPDATE outbox SET posted_at = ?, outcome = 'quarantined', reason = ?,"
        " lease_owner = NULL, lease_until = NULL"
        " WHERE kind = ? AND ref_id = ? AND posted_at IS NULL",
        [(now_ms, why, QR_RIDE.name, r["id"]) for r, _, _, _, why in moved],
    )
    cur.executemany("DELETE FROM qr_txn WHERE id = ?", [(r["id"],) for r, *_ in moved])
    if moved:
        log.warning(
            "migration 13: %d ride(s) moved to qr_txn_quarantine: their code was stored"
            " earlier by another ride; list them with `ykt gateway quarantine`",
            len(moved),
        )
    _run(
        cur,
        dialect,
        "CREATE UNIQUE INDEX qr_txn_code_once ON qr_txn (code_hash); DROP INDEX qr_txn_code;",
    )


Migration = str | Callable[[Cursor, str, int], None]

MIGRATIONS: list[tuple[int, str, Migration]] = [
    (
        1,
        "terminals, batches, transactions, conflicts, outbox, hotlist, loads",
        """
CREATE TABLE terminals (
    terminal_id  TEXT PRIMARY KEY,
    operator_id  TEXT NOT NULL,
    role         TEXT NOT NULL DEFAULT 'pos',
    name         TEXT NOT NULL DEFAULT '',
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   {big} NOT NULL,
    revoked_at   {big}
);
CREATE TABLE batches (
    terminal_id  TEXT NOT NULL,
    batch_id     TEXT NOT NULL,
    body_hash    TEXT NOT NULL,
    records      INTEGER NOT NULL,
    stored       INTEGER NOT NULL,
    received_at  {big} NOT NULL,
    PRIMARY KEY (terminal_id, batch_id)
);
CREATE TABLE txn (
    id             {id},
    terminal_id    TEXT NOT NULL,
    terminal_seq   {big} NOT NULL,
    operator_id    TEXT NOT NULL,
    issuer_id      TEXT NOT NULL,
    card_serial    TEXT NOT NULL,
    txn_type       INTEGER NOT NULL,
    amount         {big} NOT NULL CHECK (amount >= 0),
    balance_before {big} NOT NULL,
    card_atc       INTEGER NOT NULL,
    key_version    INTEGER NOT NULL,
    algorithm      INTEGER NOT NULL,
    txn_time       TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('settled', 'suspect')),
    tac            TEXT,
    mac2           TEXT,
    mac2_verified  INTEGER,
    resolution     TEXT,
    context        TEXT NOT NULL,
    content_hash   TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    received_at    {big} NOT NULL,
    UNIQUE (terminal_id, terminal_seq)
);
CREATE TABLE txn_conflicts (
    id            {id},
    terminal_id   TEXT NOT NULL,
    terminal_seq  {big} NOT NULL,
    content_hash  TEXT NOT NULL,
    record        TEXT NOT NULL,
    batch_id      TEXT NOT NULL,
    received_at   {big} NOT NULL,
    UNIQUE (terminal_id, terminal_seq, content_hash)
);
CREATE TABLE outbox (
    id            {id},
    kind          TEXT NOT NULL,
    ref_id        {big} NOT NULL,
    payload       TEXT,
    created_at    {big} NOT NULL,
    available_at  {big} NOT NULL,
    lease_owner   TEXT,
    lease_until   {big},
    attempts      INTEGER NOT NULL DEFAULT 0,
    posted_at     {big},
    outcome       TEXT,
    reason        TEXT,
    UNIQUE (kind, ref_id)
);
CREATE INDEX outbox_pending ON outbox (available_at, id) WHERE posted_at IS NULL;
CREATE TABLE hotlist (
    issuer_id    TEXT NOT NULL,
    card_serial  TEXT NOT NULL,
    listed       INTEGER NOT NULL,
    version      {big} NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (issuer_id, card_serial)
);
CREATE TABLE hotlist_changes (
    version      {id},
    issuer_id    TEXT NOT NULL,
    card_serial  TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    reason       TEXT NOT NULL DEFAULT '',
    actor        TEXT NOT NULL DEFAULT '',
    at           {big} NOT NULL
);
CREATE TABLE loads (
    id             {id},
    reference      TEXT NOT NULL UNIQUE,
    terminal_id    TEXT NOT NULL,
    operator_id    TEXT NOT NULL,
    issuer_id      TEXT NOT NULL,
    card_serial    TEXT NOT NULL,
    online_atc     INTEGER NOT NULL,
    amount         {big} NOT NULL CHECK (amount > 0),
    balance_before {big} NOT NULL,
    key_version    INTEGER NOT NULL,
    algorithm      INTEGER NOT NULL,
    card_random    TEXT NOT NULL,
    mac1           TEXT NOT NULL,
    mac2           TEXT NOT NULL,
    host_time      TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('authorized', 'confirmed', 'void')),
    tac            TEXT,
    resolution     TEXT,
    purpose        TEXT NOT NULL DEFAULT '',
    created_at     {big} NOT NULL,
    resolved_at    {big}
);
CREATE UNIQUE INDEX loads_live ON loads (issuer_id, card_serial, online_atc)
    WHERE state <> 'void';
""",
    ),
    (
        2,
        "card book from issuance records; subsidy rosters, lines and their audit trail",
        """
CREATE TABLE cards (
    card_number     TEXT PRIMARY KEY,
    serial          TEXT NOT NULL,
    issuer_id       TEXT NOT NULL,
    chip_id         TEXT,
    name            TEXT NOT NULL,
    id_type         INTEGER NOT NULL,
    id_number       TEXT NOT NULL,
    card_kind       INTEGER NOT NULL,
    card_type       INTEGER NOT NULL,
    desk_state      TEXT NOT NULL
                    CHECK (desk_state IN ('pending', 'active', 'lost', 'replaced', 'void')),
    replaces        TEXT,
    replaced_by     TEXT,
    carry_fen       {big} NOT NULL DEFAULT 0,
    desk_id         TEXT NOT NULL,
    desk_revision   {big} NOT NULL,
    record          TEXT NOT NULL,
    lost_at         {big},
    lost_via        TEXT,
    hotlist_version {big},
    updated_at      {big} NOT NULL
);
CREATE UNIQUE INDEX cards_by_serial ON cards (issuer_id, serial);
CREATE INDEX cards_by_id_number ON cards (id_number);
CREATE TABLE card_revisions (
    card_number   TEXT NOT NULL,
    revision      {big} NOT NULL,
    desk_id       TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    record        TEXT NOT NULL,
    received_at   {big} NOT NULL,
    PRIMARY KEY (card_number, revision)
);
CREATE TABLE subsidy_rosters (
    id              {id},
    title           TEXT NOT NULL,
    source          TEXT NOT NULL DEFAULT '',
    content_hash    TEXT NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('declared', 'reviewed', 'approved', 'rejected')),
    line_count      INTEGER NOT NULL,
    total_fen       {big} NOT NULL,
    rejected_rows   INTEGER NOT NULL,
    report          TEXT NOT NULL,
    declared_by     TEXT NOT NULL,
    declared_at     {big} NOT NULL,
    reviewed_by     TEXT,
    reviewed_at     {big},
    approved_by     TEXT,
    approved_at     {big},
    rejected_by     TEXT,
    rejected_at     {big},
    rejected_reason TEXT
);
CREATE TABLE subsidy_lines (
    id           {id},
    roster_id    {big} NOT NULL REFERENCES subsidy_rosters (id),
    row_no       INTEGER NOT NULL,
    name         TEXT NOT NULL,
    id_number    TEXT NOT NULL,
    card_number  TEXT NOT NULL,
    card_serial  TEXT NOT NULL,
    item         TEXT NOT NULL,
    item_name    TEXT NOT NULL,
    category     TEXT NOT NULL,
    amount_fen   {big} NOT NULL CHECK (amount_fen > 0),
    period       TEXT NOT NULL,
    live         INTEGER NOT NULL DEFAULT 1,
    load_id      {big},
    UNIQUE (roster_id, row_no)
);
CREATE UNIQUE INDEX subsidy_lines_once ON subsidy_lines (id_number, item, period)
    WHERE live = 1;
CREATE INDEX subsidy_lines_by_card ON subsidy_lines (card_number);
CREATE INDEX subsidy_lines_by_load ON subsidy_lines (load_id);
CREATE TABLE subsidy_events (
    id          {id},
    roster_id   {big} NOT NULL REFERENCES subsidy_rosters (id),
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          {big} NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX subsidy_events_by_roster ON subsidy_events (roster_id, id);
""",
    ),
    (
        3,
        "void challenges: a load is voided only on an INITIALIZE FOR LOAD read after one",
        """
CREATE TABLE load_void_challenges (
    load_id         {big} PRIMARY KEY REFERENCES loads (id),
    terminal_field  TEXT NOT NULL,
    amount          {big} NOT NULL CHECK (amount > 0),
    created_at      {big} NOT NULL,
    expires_at      {big} NOT NULL,
    used_at         {big},
    used_mac1       TEXT
);
""",
    ),
    (4, "Electronic Cash sales uploaded by POS terminals", kind_table(EC_PURCHASE)),
    (5, campus_schema.DESCRIPTION, campus_schema.campus_tables()),
    (
        6,
        "subsidy office: households and places on lines, 公示 with objections and sign-off,"
        " sent to finance, agent-bank payments, audit findings",
        """
ALTER TABLE subsidy_lines ADD COLUMN payee TEXT NOT NULL DEFAULT 'person';
ALTER TABLE subsidy_lines ADD COLUMN member_name TEXT NOT NULL DEFAULT '';
ALTER TABLE subsidy_lines ADD COLUMN member_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subsidy_lines ADD COLUMN household_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subsidy_lines ADD COLUMN township TEXT NOT NULL DEFAULT '';
ALTER TABLE subsidy_lines ADD COLUMN village TEXT NOT NULL DEFAULT '';
ALTER TABLE subsidy_lines ADD COLUMN department TEXT NOT NULL DEFAULT '';
ALTER TABLE subsidy_lines ADD COLUMN bank_line_id {big};
ALTER TABLE subsidy_rosters ADD COLUMN sent_by TEXT;
ALTER TABLE subsidy_rosters ADD COLUMN sent_at {big};
CREATE INDEX subsidy_lines_by_period ON subsidy_lines (id_number, period);
CREATE TABLE subsidy_publications (
    roster_id     {big} PRIMARY KEY REFERENCES subsidy_rosters (id),
    starts_on     TEXT NOT NULL,
    ends_on       TEXT NOT NULL,
    place         TEXT NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  {big} NOT NULL,
    signed_by     TEXT,
    signed_at     {big},
    signatures    INTEGER,
    signoff_note  TEXT
);
CREATE TABLE subsidy_objections (
    id           {id},
    roster_id    {big} NOT NULL REFERENCES subsidy_rosters (id),
    line_id      {big} NOT NULL REFERENCES subsidy_lines (id),
    raised_by    TEXT NOT NULL,
    raised_at    {big} NOT NULL,
    reason       TEXT NOT NULL,
    outcome      TEXT CHECK (outcome IN ('upheld', 'dismissed')),
    resolved_by  TEXT,
    resolved_at  {big},
    resolution   TEXT
);
CREATE TABLE subsidy_bank_batches (
    id           {id},
    reference    TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   {big} NOT NULL,
    line_count   INTEGER NOT NULL,
    total_fen    {big} NOT NULL,
    result_hash  TEXT UNIQUE,
    result_by    TEXT,
    result_at    {big}
);
CREATE TABLE subsidy_bank_lines (
    id           {id},
    batch_id     {big} NOT NULL REFERENCES subsidy_bank_batches (id),
    seq          INTEGER NOT NULL,
    line_id      {big} NOT NULL REFERENCES subsidy_lines (id),
    card_number  TEXT NOT NULL,
    amount_fen   {big} NOT NULL CHECK (amount_fen > 0),
    state        TEXT NOT NULL CHECK (state IN ('sent', 'paid', 'failed')),
    reason       TEXT NOT NULL DEFAULT '',
    bank_ref     TEXT NOT NULL DEFAULT '',
    sent_on      TEXT NOT NULL,
    result_at    {big},
    UNIQUE (batch_id, seq)
);
CREATE UNIQUE INDEX subsidy_bank_lines_once ON subsidy_bank_lines (line_id)
    WHERE state <> 'failed';
CREATE TABLE subsidy_findings (
    id           {id},
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    found_by     TEXT NOT NULL,
    found_at     {big} NOT NULL,
    rectify_by   TEXT,
    rectify_at   {big},
    closed_by    TEXT,
    closed_at    {big},
    note         TEXT,
    UNIQUE (kind, subject)
);
CREATE TABLE subsidy_line_events (
    id       {id},
    line_id  {big} NOT NULL REFERENCES subsidy_lines (id),
    action   TEXT NOT NULL,
    actor    TEXT NOT NULL,
    at       {big} NOT NULL,
    note     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX subsidy_line_events_by_line ON subsidy_line_events (line_id, id);
""",
    ),
    (7, campus_schema.ALLOWANCE_DESCRIPTION, campus_schema.allowance_tables()),
    (
        8,
        "card numbers: blocks leased to desks, and each number's use (one person, one card)",
        """
CREATE TABLE number_sequences (
    issuer_id  TEXT PRIMARY KEY,
    next_seq   {big} NOT NULL
);
CREATE TABLE number_blocks (
    id         {id},
    issuer_id  TEXT NOT NULL,
    desk_id    TEXT NOT NULL,
    first_seq  {big} NOT NULL,
    last_seq   {big} NOT NULL CHECK (last_seq >= first_seq),
    leased_at  {big} NOT NULL,
    UNIQUE (issuer_id, first_seq)
);
CREATE INDEX number_blocks_by_desk ON number_blocks (desk_id, issuer_id);
CREATE TABLE card_claims (
    card_number  TEXT PRIMARY KEY,
    issuer_id    TEXT NOT NULL,
    desk_id      TEXT NOT NULL,
    block_id     {big} REFERENCES number_blocks (id),
    id_number    TEXT NOT NULL,
    card_kind    INTEGER NOT NULL,
    replaces     TEXT,
    live         INTEGER NOT NULL,
    claimed_at   {big} NOT NULL
);
CREATE UNIQUE INDEX card_claims_one_live ON card_claims (id_number, card_kind) WHERE live = 1;
""",
    ),
    (
        9,
        "rides paid by QR codes, uploaded by validators",
        kind_table(QR_RIDE) + "CREATE INDEX qr_txn_code ON qr_txn (code_hash);\n",
    ),
    (10, campus_schema.BACK_OFFICE_DESCRIPTION, campus_schema.back_office_tables()),
    (
        11,
        "subsidy office: bank result files, the kiosk pickup's holder check lock-out",
        """
CREATE TABLE subsidy_bank_results (
    id           {id},
    batch_id     {big} NOT NULL REFERENCES subsidy_bank_batches (id),
    content_hash TEXT NOT NULL UNIQUE,
    imported_by  TEXT NOT NULL,
    imported_at  {big} NOT NULL,
    paid         INTEGER NOT NULL,
    failed       INTEGER NOT NULL,
    paid_fen     {big} NOT NULL
);
ALTER TABLE subsidy_bank_lines ADD COLUMN result_id {big};
CREATE TABLE subsidy_pickup_guard (
    card_number   TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    last_at       {big} NOT NULL,
    locked_until  {big}
);
""",
    ),
    (
        12,
        "ride-code parameter files (root keys, issuer whitelist) for validators",
        """
CREATE TABLE qr_params (
    version  {id},
    kind     TEXT NOT NULL,
    body     TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    entries  INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    at       {big} NOT NULL
);
CREATE INDEX qr_params_kind ON qr_params (kind, version);
""",
    ),
    (
        13,
        "a ride code is stored once: the database holds it, whatever uploads race;"
        " rides stored twice before are quarantined",
        _ride_code_once,
    ),
    (
        14,
        "quarantined rides, for databases indexed by migration 13 before it quarantined",
        QR_QUARANTINE,
    ),
    (
        15,
        "card numbers: a stale claim released by the card centre, and its audit trail",
        """
ALTER TABLE card_claims ADD COLUMN released_at {big};
CREATE TABLE card_claim_releases (
    id           {id},
    card_number  TEXT NOT NULL REFERENCES card_claims (card_number),
    desk_id      TEXT NOT NULL,
    id_number    TEXT NOT NULL,
    card_kind    INTEGER NOT NULL,
    claimed_at   {big} NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    at           {big} NOT NULL
);
""",
    ),
    (
        16,
        "subsidy office: the agent bank each payment batch went to",
        "ALTER TABLE subsidy_bank_batches ADD COLUMN bank_code TEXT;\n",
    ),
    (
        17,
        "outbox: the records clearing rejected, counted by /health without a scan",
        "CREATE INDEX outbox_rejected ON outbox (id) WHERE outcome = 'rejected';\n",
    ),
    (
        18,
        "a replaced card's purchases uploaded after its balance was carried, counted by"
        " /health without a scan: purchases by card serial, claims of replacements",
        "CREATE INDEX txn_by_serial ON txn (card_serial, received_at);\n"
        "CREATE INDEX card_claims_replacing ON card_claims (replaces)"
        " WHERE replaces IS NOT NULL;\n",
    ),
]

_TYPES = {
    POSTGRES: {"id": "BIGSERIAL PRIMARY KEY", "big": "BIGINT"},
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "big": "INTEGER"},
}


def render(sql: str, dialect: str) -> str:
    return sql.format(**_TYPES[dialect])


def _run(cur: Cursor, dialect: str, sql: str) -> None:
    for statement in render(sql, dialect).split(";"):
        if statement.strip():
            cur.execute(statement)


def migrate(cur: Cursor, dialect: str, now_ms: int, upto: int | None = None) -> list[int]:
    """Apply every migration not yet recorded (up to version ``upto``, to build an older
    schema in tests); returns the versions applied now.

    Runs inside the caller's transaction, so concurrent gateways starting together apply
    each migration once (PostgreSQL: an advisory lock serialises them).
    """
    if dialect == POSTGRES:
        cur.execute("SELECT pg_advisory_xact_lock(978004)")
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
        " description TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )
    cur.execute("SELECT version FROM schema_migrations")
    done = {int(r[0]) for r in cur.fetchall()}
    applied = []
    for version, description, sql in MIGRATIONS:
        if version in done or (upto is not None and version > upto):
            continue
        if isinstance(sql, str):
            _run(cur, dialect, sql)
        else:
            sql(cur, dialect, now_ms)
        cur.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
            (version, description, now_ms),
        )
        applied.append(version)
    return applied
