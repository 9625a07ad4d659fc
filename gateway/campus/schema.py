"""The campus migration's tables (docs/campus.md); appended to the gateway's migrations."""

from __future__ import annotations

from terminal.record import ACCESS_EVENT

DESCRIPTION = "campus one-card: people, card bindings, the doors' allow list, access events"


def campus_tables() -> str:
    events = ",\n    ".join(
        f"{f.name} {'{big}' if f.type is int else 'TEXT'}{'' if f.nullable else ' NOT NULL'}"
        for f in ACCESS_EVENT.fields
    )
    return f"""
CREATE TABLE campus_people (
    person_no   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    grp         TEXT NOT NULL,
    valid_from  TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    created_at  {{big}} NOT NULL
);
CREATE TABLE campus_cards (
    card_serial TEXT PRIMARY KEY,
    person_no   TEXT NOT NULL REFERENCES campus_people (person_no),
    issuer_id   TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'lost')),
    bound_at    {{big}} NOT NULL
);
CREATE TABLE campus_access_changes (
    version     {{id}},
    card_serial TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('allow', 'deny')),
    person_no   TEXT NOT NULL,
    grp         TEXT NOT NULL,
    valid_from  TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          {{big}} NOT NULL
);
CREATE TABLE campus_events (
    {events},
    received_at {{big}} NOT NULL,
    PRIMARY KEY (terminal_id, event_seq)
);
CREATE INDEX campus_events_by_area ON campus_events (area, event_time);
"""


ALLOWANCE_DESCRIPTION = "campus allowance purse: monthly credits per person, canteen spends"


def allowance_tables() -> str:
    """The allowance purse (补助): one credit per person and month, one spend per sale."""
    return """
CREATE TABLE campus_allowance_accounts (
    person_no   TEXT PRIMARY KEY REFERENCES campus_people (person_no),
    balance     {big} NOT NULL CHECK (balance >= 0)
);
CREATE TABLE campus_allowance_credits (
    person_no   TEXT NOT NULL REFERENCES campus_people (person_no),
    month       TEXT NOT NULL,
    amount      {big} NOT NULL CHECK (amount > 0),
    roster      TEXT NOT NULL,
    at          {big} NOT NULL,
    PRIMARY KEY (person_no, month)
);
CREATE TABLE campus_allowance_spends (
    terminal_id   TEXT NOT NULL,
    sale_seq      {big} NOT NULL,
    card_serial   TEXT NOT NULL,
    person_no     TEXT NOT NULL REFERENCES campus_people (person_no),
    amount        {big} NOT NULL CHECK (amount > 0),
    meal          TEXT NOT NULL,
    balance_after {big} NOT NULL,
    at            {big} NOT NULL,
    PRIMARY KEY (terminal_id, sale_seq)
);
"""


BACK_OFFICE_DESCRIPTION = (
    "campus library loans, allowance spending limits, voided allowance sales (unanswered)"
)


def back_office_tables() -> str:
    """Loans named by the desk's numbers; day limits per person or group; voided sales."""
    return """
CREATE TABLE campus_library_loans (
    terminal_id     TEXT NOT NULL,
    loan_no         {big} NOT NULL,
    card_serial     TEXT NOT NULL,
    person_no       TEXT NOT NULL REFERENCES campus_people (person_no),
    book            TEXT NOT NULL,
    loan_limit      {big} NOT NULL,
    borrowed_at     {big} NOT NULL,
    return_terminal TEXT,
    return_no       {big},
    returned_at     {big},
    PRIMARY KEY (terminal_id, loan_no),
    UNIQUE (return_terminal, return_no)
);
CREATE INDEX campus_library_loans_by_book ON campus_library_loans (book, returned_at);
CREATE INDEX campus_library_loans_by_person ON campus_library_loans (person_no, returned_at);
CREATE TABLE campus_spend_limits (
    scope       TEXT NOT NULL CHECK (scope IN ('person', 'group')),
    name        TEXT NOT NULL,
    day_limit   {big} NOT NULL CHECK (day_limit >= 0),
    set_at      {big} NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE campus_allowance_voids (
    terminal_id TEXT NOT NULL,
    sale_seq    {big} NOT NULL,
    refunded    {big} NOT NULL,
    at          {big} NOT NULL,
    PRIMARY KEY (terminal_id, sale_seq)
);
CREATE INDEX campus_allowance_spends_by_person ON campus_allowance_spends (person_no, at);
"""
