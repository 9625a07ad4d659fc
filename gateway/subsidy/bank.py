"""Agent-bank disbursement (代发): payment files out, result files in, tracking, funds.

Lines of rosters sent to finance go to the agent bank in a **batch**: each line once, with
a reference ``<batch>-<seq>``; a line is in at most one live bank line (``sent`` or
``paid``; a partial unique index holds it) and in a batch only while no live kiosk load
holds it, and a kiosk reserves a line only while no live bank line holds it: the same
guarded ``UPDATE`` on ``subsidy_lines`` in both directions, so a line is paid by one
channel once.

The bank's **result file** is checked as a whole before anything changes: its batch is
known, it was not imported before, every line names a reference of that batch with the
card and amount sent, once, not settled yet, and the totals line adds up. Then its lines
are ``paid`` or ``failed`` (with the bank's reason). A failed line may be sent again in a
new batch (``reissue``) or picked up at a kiosk. The bank's MAC (HMAC-SM3 or HMAC-SHA256
with the key shared with it, ``BankKey``) must verify before a result file is read (only
its first line's batch reference is looked at first, to choose the key), so only the bank
can say a line failed and free it to be paid again. A line neither paid nor failed three
working days after it was sent is **overdue** (weekends and a holiday list; docs/subsidy.md).

An office may pay through several agent banks (``Banks``: name, code, key, file format,
and township or department rules): each batch goes to one bank, recorded on the batch,
and its result file is checked with that bank's key alone, so one bank cannot settle
another bank's batch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac

from gateway.errors import Conflict, Forbidden, Invalid, NotFound
from gateway.loads import SUBSIDY_PURPOSE
from gateway.storage import POSTGRES, Cursor, Database, now_ms, retried
from gateway.subsidy.store import check_actor
from terminal.private_files import owner_only
from terminal.text import FileError
from terminal.tomlfile import ANY_KEYS, TomlFile, read_toml

SENT = "sent"
PAID = "paid"
FAILED = "failed"
OVERDUE = "overdue"
WORKING_DAYS = 3  # the agent bank credits each account within 3 working days (the seed)
MAX_RESULT_BYTES = 10 * 1024 * 1024
MAX_REASON = 200
FORMATS = ("csv", "fixed")
# fixed-width layout, widths in GBK bytes: (field, width, numeric)
FIXED_HEADER = (("type", 1, False), ("batch", 20, False), ("date", 8, True), ("count", 8, True),
                ("total_fen", 15, True))  # fmt: skip
FIXED_DETAIL = (("type", 1, False), ("seq", 6, True), ("card_number", 19, True),
                ("name", 40, False), ("id_number", 18, False), ("amount_fen", 15, True),
                ("reference", 32, False))  # fmt: skip
FIXED_TRAILER = (("type", 1, False), ("count", 8, True), ("total_fen", 15, True))
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


# -- working days -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Calendar:
    """Working days: Monday to Friday, less ``holidays``, plus ``workdays`` (调休: a
    weekend day worked in exchange for a holiday)."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def is_working(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start``."""
        day = start
        while n > 0:
            day += timedelta(days=1)
            if self.is_working(day):
                n -= 1
        return day


def load_calendar(path: str | Path | None) -> Calendar:
    """A holiday list: one ``YYYY-MM-DD`` a line (a holiday), ``+YYYY-MM-DD`` for a
    weekend day that is worked; ``#`` starts a comment."""
    if path is None:
        return Calendar()
    holidays, workdays = set(), set()
    text = Path(path).read_text(encoding="utf-8-sig")
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        target = workdays if line.startswith("+") else holidays
        try:
            target.add(date.fromisoformat(line.lstrip("+").strip()))
        except ValueError:
            raise Invalid(
                "bad_holidays", f"{path} line {n}: {raw!r} is no date YYYY-MM-DD"
            ) from None
    return Calendar(frozenset(holidays), frozenset(workdays))


# -- batches ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BankLine:
    id: int
    batch_id: int
    batch: str
    seq: int
    line_id: int
    card_number: str
    name: str
    id_number: str
    item: str
    period: str
    amount_fen: int
    state: str
    reason: str
    bank_ref: str
    sent_on: date
    result_at: int | None

    @property
    def reference(self) -> str:
        return reference(self.batch, self.seq)

    def tracked(self, today: date, calendar: Calendar) -> str:
        """paid, failed, sent (within the bank's 3 working days) or overdue."""
        if self.state == SENT and today > self.due(calendar):
            return OVERDUE
        return self.state

    def due(self, calendar: Calendar) -> date:
        return calendar.add_working_days(self.sent_on, WORKING_DAYS)

    def to_json(self, today: date | None = None, calendar: Calendar | None = None) -> dict:
        cal = calendar or Calendar()
        return {
            "reference": self.reference,
            "batch": self.batch,
            "seq": self.seq,
            "line_id": self.line_id,
            "card_number": self.card_number,
            "item": self.item,
            "period": self.period,
            "amount_fen": self.amount_fen,
            "state": self.tracked(today or date.today(), cal),
            "reason": self.reason,
            "bank_ref": self.bank_ref,
            "sent_on": self.sent_on.isoformat(),
            "due_on": self.due(cal).isoformat(),
            "result_at_ms": self.result_at,
        }


def reference(batch: str, seq: int) -> str:
    return f"{batch}-{seq:05d}"


_BANK_SELECT = (
    "SELECT b.id, b.batch_id, bb.reference, b.seq, b.line_id, b.card_number, l.name,"
    " l.id_number, l.item, l.period, b.amount_fen, b.state, b.reason, b.bank_ref, b.sent_on,"
    " b.result_at FROM subsidy_bank_lines b JOIN subsidy_bank_batches bb ON bb.id = b.batch_id"
    " JOIN subsidy_lines l ON l.id = b.line_id"
)


def _bank_line(r: Any) -> BankLine:
    return BankLine(
        int(r[0]), int(r[1]), r[2], int(r[3]), int(r[4]), r[5], r[6], r[7], r[8], r[9],
        int(r[10]), r[11], r[12], r[13], date.fromisoformat(r[14]),
        None if r[15] is None else int(r[15]),
    )  # fmt: skip


def _batch_lines(cur: Cursor, batch_id: int) -> list[BankLine]:
    cur.execute(_BANK_SELECT + " WHERE b.batch_id = ? ORDER BY b.seq", (batch_id,))
    return [_bank_line(r) for r in cur.fetchall()]


def _batch_row(cur: Cursor, ref: str) -> dict[str, Any]:
    cur.execute(
        "SELECT id, reference, created_by, created_at, line_count, total_fen, bank_code"
        " FROM subsidy_bank_batches WHERE reference = ?",
        (ref,),
    )
    r = cur.fetchone()
    if r is None:
        raise NotFound("unknown_batch", f"no bank batch {ref!r} was ever sent")
    keys = ("id", "reference", "created_by", "created_at_ms", "lines", "total_fen", "bank")
    return dict(zip(keys, r, strict=True))


# Lines the bank may be paid for: live, roster sent to finance, no live kiosk load, no live
# bank line, and the card not lost or replaced (those wait for the new card).
def free_of_kiosk(t: str) -> str:
    """SQL: the line (table alias ``t``) has no load, or a void one."""
    return (
        f"({t}.load_id IS NULL OR EXISTS (SELECT 1 FROM loads ld WHERE ld.id = {t}.load_id"
        " AND ld.state = 'void'))"
    )


def free_of_bank(t: str) -> str:
    """SQL: the line (table alias ``t``) has no bank line, or one an authenticated result
    file of the bank said failed (``result_id``: only ``import_result`` sets it)."""
    return (
        f"({t}.bank_line_id IS NULL OR EXISTS (SELECT 1 FROM subsidy_bank_lines bk"
        f" WHERE bk.id = {t}.bank_line_id AND bk.state = 'failed'"
        " AND bk.result_id IS NOT NULL))"
    )


def _eligible(
    cur: Cursor, roster_ids: list[int] | None, failed_in: int | None
) -> tuple[list[Any], list[dict[str, Any]]]:
    where = [
        "l.live = 1",
        "r.state = 'approved'",
        "r.sent_at IS NOT NULL",
        free_of_kiosk("l"),
        free_of_bank("l"),
    ]
    params: list[Any] = []
    if roster_ids:
        where.append(f"l.roster_id IN ({','.join('?' * len(roster_ids))})")
        params.extend(roster_ids)
    if failed_in is not None:
        where.append(
            "EXISTS (SELECT 1 FROM subsidy_bank_lines f WHERE f.id = l.bank_line_id"
            " AND f.batch_id = ? AND f.state = 'failed' AND f.result_id IS NOT NULL)"
        )
        params.append(failed_in)
    cur.execute(
        "SELECT l.id, l.card_number, l.amount_fen, c.desk_state, c.lost_at, l.township,"
        " l.department FROM subsidy_lines l JOIN subsidy_rosters r ON r.id = l.roster_id"
        " LEFT JOIN cards c ON c.card_number = l.card_number"
        f" WHERE {' AND '.join(where)} ORDER BY l.id",
        params,
    )
    take, skipped = [], []
    for r in cur.fetchall():
        if r[3] is not None and (r[3] in ("lost", "replaced", "void") or r[4] is not None):
            skipped.append(
                {"line_id": int(r[0]), "reason": f"card {r[1]} is lost: waits for its new card"}
            )
        else:
            take.append(r)
    return take, skipped


def create_batch(
    db: Database,
    actor: str,
    *,
    roster_ids: list[int] | None = None,
    reissue_of: str | None = None,
    today: date | None = None,
    banks: Banks | None = None,
    bank: str | None = None,
) -> dict[str, Any]:
    """A payment batch of every line the bank may be paid for (of ``roster_ids`` if given),
    or, with ``reissue_of``, the failed lines of that batch sent again. With ``banks``, the
    batch goes to ``bank`` (else the reissued batch's bank, else the default one), recorded
    on the batch, and takes no line a rule sends to another bank."""
    actor = check_actor(actor)
    today = today or date.today()
    now = now_ms()
    with db.tx() as cur:
        if db.dialect == POSTGRES:  # SQLite has one writer
            # batches are built one at a time: each is numbered after the last one committed
            # and takes only lines no other batch took (two at once took one number)
            cur.execute("SELECT pg_advisory_xact_lock(978023)")
        previous = _batch_row(cur, reissue_of) if reissue_of else None
        failed_in = previous["id"] if previous else None
        take, skipped = _eligible(cur, roster_ids, failed_in)
        to = banks.bank(bank or (previous or {}).get("bank")) if banks else None
        if to is not None and banks is not None and previous is None:
            take, skipped = banks.split(to, take, skipped)
        if not take:
            what = f"no failed line of batch {reissue_of} to send again" if reissue_of else (
                "no line to send: rosters must be approved and sent to finance, and lines "
                "not paid, held at a kiosk or already at the bank"
            )  # fmt: skip
            raise Conflict("nothing_to_send", what)
        cur.execute("SELECT COUNT(*) FROM subsidy_bank_batches")
        ref = f"B{today:%Y%m%d}{int(cur.fetchone()[0]) + 1:06d}"
        total = sum(int(r[2]) for r in take)
        cur.execute(
            "INSERT INTO subsidy_bank_batches (reference, created_by, created_at, line_count,"
            " total_fen, bank_code) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (ref, actor, now, len(take), total, to.code if to else None),
        )
        batch_id = int(cur.fetchone()[0])
        for seq, (line_id, card, amount, *_) in enumerate(take, 1):
            cur.execute(
                "INSERT INTO subsidy_bank_lines (batch_id, seq, line_id, card_number, amount_fen,"
                " state, sent_on) VALUES (?, ?, ?, ?, ?, 'sent', ?) RETURNING id",
                (batch_id, seq, line_id, card, amount, today.isoformat()),
            )
            bank_line = int(cur.fetchone()[0])
            cur.execute(
                "UPDATE subsidy_lines SET bank_line_id = ? WHERE id = ? AND live = 1"
                f" AND {free_of_kiosk('subsidy_lines')} AND {free_of_bank('subsidy_lines')}",
                (bank_line, line_id),
            )
            if cur.rowcount != 1:
                raise Conflict(
                    "taken", f"line {line_id} was taken meanwhile; build the batch again"
                )
            line_event(cur, int(line_id), "bank_sent", actor, now, reference(ref, seq))
        lines = _batch_lines(cur, batch_id)
    return {
        "batch": ref,
        "bank": to.code if to else None,
        "lines": len(lines),
        "total_fen": total,
        "reissue_of": reissue_of,
        "skipped": skipped,
    }


def line_event(cur: Cursor, line_id: int, action: str, actor: str, at: int, note: str) -> None:
    """One row of a line's own trail (bank, card changes): never updated."""
    cur.execute(
        "INSERT INTO subsidy_line_events (line_id, action, actor, at, note) VALUES (?, ?, ?, ?, ?)",
        (line_id, action, actor, at, note[:1000]),
    )


def batch_lines(db: Database, ref: str) -> tuple[dict[str, Any], list[BankLine]]:
    with db.tx() as cur:
        batch = _batch_row(cur, ref)
        return batch, _batch_lines(cur, batch["id"])


# -- the payment file -------------------------------------------------------------------------
def _header(batch: dict[str, Any], lines: list[BankLine]) -> list[str]:
    day = lines[0].sent_on.strftime("%Y%m%d")
    return ["H", batch["reference"], day, str(len(lines)), str(sum(x.amount_fen for x in lines))]


def payment_csv(batch: dict[str, Any], lines: list[BankLine]) -> str:
    """H,batch,date,count,total_fen / D,seq,card,name,id,amount_fen,reference / T,count,total"""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(_header(batch, lines))
    for x in lines:
        w.writerow(["D", x.seq, x.card_number, x.name, x.id_number, x.amount_fen, x.reference])
    w.writerow(["T", len(lines), sum(x.amount_fen for x in lines)])
    return out.getvalue()


def _fixed(layout: tuple[tuple[str, int, bool], ...], values: list[Any]) -> bytes:
    out = b""
    for (name, width, numeric), value in zip(layout, values, strict=True):
        raw = str(value).encode("gbk")
        if len(raw) > width:
            raise Invalid("too_wide", f"{name} {value!r} is wider than {width} bytes")
        out += raw.rjust(width, b"0") if numeric else raw.ljust(width, b" ")
    return out + b"\r\n"


def payment_fixed(batch: dict[str, Any], lines: list[BankLine]) -> bytes:
    """The same records in fixed width, GBK, CRLF (widths in ``FIXED_*``)."""
    out = _fixed(FIXED_HEADER, _header(batch, lines))
    for x in lines:
        values = ["D", x.seq, x.card_number, x.name, x.id_number, x.amount_fen, x.reference]
        out += _fixed(FIXED_DETAIL, values)
    return out + _fixed(FIXED_TRAILER, ["T", len(lines), sum(x.amount_fen for x in lines)])


# -- the bank's authentication ----------------------------------------------------------------
MACS: dict[str, type[hashes.HashAlgorithm]] = {"hmac-sm3": hashes.SM3, "hmac-sha256": hashes.SHA256}
PLACEMENTS = ("line", "sidecar")
MAC_TAG = "MAC"  # a signature line: MAC,<hex>, the file's last line
KEY_BYTES = (16, 64)
_KEY_SCHEMA = {"mac": None, "signature": None, "key": None}


@dataclass(frozen=True)
class BankKey:
    """How the agent bank authenticates its result files: an HMAC (SM3 or SHA-256) with a key
    shared with it, on the file's last line (``line``) or handed over apart (``sidecar``)."""

    mac: str
    signature: str
    key: bytes = field(repr=False)

    def sign(self, content: bytes) -> str:
        """The MAC of ``content`` in hex (upper case)."""
        h = hmac.HMAC(self.key, MACS[self.mac]())
        h.update(content)
        return h.finalize().hex().upper()

    def signed(self, content: bytes) -> bytes:
        """``content`` as the bank sends it with a signature line (``line`` banks)."""
        body = content if content.endswith(b"\n") or not content else content + b"\n"
        return body + f"{MAC_TAG},{self.sign(body)}\n".encode()


class _KeyFile(TomlFile):
    what = "agent bank key file"


def load_bank_key(path: str | Path) -> BankKey:
    """The agent bank's key file (TOML: ``mac``, ``signature``, ``key`` in hex), owner-only;
    the key's value never appears in an error."""
    owner_only(path)
    text, data = read_toml(path, "agent bank key file", lambda w, n: FileError(path, n, w))
    f = _KeyFile(data, str(path), text)
    f.check_keys(data, _KEY_SCHEMA, ())
    for name in _KEY_SCHEMA:
        if name not in data:
            raise f.make_error(f"{name} is missing", None)
    mac = f.choice(data["mac"], ("mac",), tuple(MACS))
    placement = f.choice(data["signature"], ("signature",), PLACEMENTS)
    raw = data["key"]
    key = bytes.fromhex(raw) if isinstance(raw, str) and _HEX.fullmatch(raw) else b""
    if not KEY_BYTES[0] <= len(key) <= KEY_BYTES[1]:
        raise f.error(
            ("key",), f"key must be {KEY_BYTES[0]} to {KEY_BYTES[1]} bytes of hex (not shown)"
        )
    return BankKey(mac, placement, key)


@dataclass(frozen=True)
class Bank:
    """One agent bank: its code (on every batch sent to it), name, key and file format."""

    code: str
    name: str
    key: BankKey
    format: str = "csv"


SINGLE = "BANK"  # the code of the one bank of a gateway configured with a bare key file


@dataclass(frozen=True)
class Banks:
    """The agent banks the office pays through, the default one (a batch naming no bank goes
    there), and rules pinning lines to a bank: a department's (主管部门) before a township's
    (乡镇)."""

    banks: dict[str, Bank]
    default: str
    departments: dict[str, str] = field(default_factory=dict)
    townships: dict[str, str] = field(default_factory=dict)

    @classmethod
    def single(cls, key: BankKey) -> Banks:
        return cls({SINGLE: Bank(SINGLE, "agent bank", key)}, SINGLE)

    def bank(self, code: str | None) -> Bank:
        """The bank of ``code`` (a batch of no bank: one sent before banks were recorded,
        the default one's)."""
        found = self.banks.get((code or self.default).upper())
        if found is None:
            raise NotFound(
                "unknown_bank",
                f"no agent bank {code!r} is configured (banks: {', '.join(sorted(self.banks))})",
            )
        return found

    def route(self, township: str, department: str) -> str | None:
        """The code of the bank a rule sends a line of this township and department to;
        None: no rule, the line goes with whichever batch takes it."""
        return self.departments.get(department) or self.townships.get(township)

    def split(
        self, to: Bank, take: list[Any], skipped: list[dict[str, Any]]
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        """The eligible lines a batch to ``to`` takes: those no rule sends to another bank;
        the others are skipped, naming their bank."""
        mine, others = [], list(skipped)
        for r in take:
            code = self.route(r[5] or "", r[6] or "")
            if code is None or code == to.code:
                mine.append(r)
            else:
                others.append(
                    {"line_id": int(r[0]), "reason": f"its rule sends it to agent bank {code}"}
                )
        return mine, others


class _BanksFile(TomlFile):
    what = "agent banks file"


_BANKS_SCHEMA = {
    "default": None,
    "banks": ANY_KEYS,
    "departments": ANY_KEYS,
    "townships": ANY_KEYS,
}
_BANK_SCHEMA = {"name": None, "key_file": None, "format": None}
_CODE = re.compile(r"[A-Z0-9_]{1,16}")


def load_banks(path: str | Path) -> Banks:
    """The office's agent banks (TOML): ``default``, ``[banks.CODE]`` with ``name``,
    ``key_file`` (relative to this file) and ``format``, and ``[departments]`` /
    ``[townships]`` tables of name = CODE (docs/subsidy.md)."""
    text, data = read_toml(path, "agent banks file", lambda w, n: FileError(path, n, w))
    f = _BanksFile(data, str(path), text)
    f.check_keys(data, _BANKS_SCHEMA, ())
    banks: dict[str, Bank] = {}
    for code, table in (data.get("banks") or {}).items():
        at = ("banks", code)
        if not _CODE.fullmatch(code):
            raise f.error(at, f"bank code {code!r} is 1..16 of A-Z, 0-9, _")
        f.check_keys(table, _BANK_SCHEMA, at)
        if "key_file" not in table:
            raise f.error(at, f"bank {code} names its key_file")
        key_path = Path(path).parent / f.text_value(table["key_file"], (*at, "key_file"))
        fmt = f.choice(table.get("format", "csv"), (*at, "format"), FORMATS)
        name = f.text_value(table.get("name", code), (*at, "name"))
        banks[code] = Bank(code, name, load_bank_key(key_path), fmt)
    if not banks:
        raise f.make_error("no agent bank configured: add a [banks.CODE] table", None)
    default = data.get("default", next(iter(banks)) if len(banks) == 1 else None)
    if default not in banks:
        raise f.error(("default",), f"default must be one of the banks ({', '.join(banks)})")
    rules: dict[str, dict[str, str]] = {}
    for kind in ("departments", "townships"):
        rules[kind] = {}
        for name, code in (data.get(kind) or {}).items():
            if code not in banks:
                raise f.error((kind, name), f"{kind}.{name} names no configured bank: {code!r}")
            rules[kind][name] = code
    return Banks(banks, default, rules["departments"], rules["townships"])


def agent_banks(banks: Banks | BankKey | None) -> Banks | None:
    """The banks of a gateway configured with a banks file, or with one bare key file."""
    return Banks.single(banks) if isinstance(banks, BankKey) else banks


def authenticate(key: BankKey | None, raw: bytes, signature: str | None) -> bytes:
    """The result file's content once the bank's MAC over it verifies: the file before its
    signature line, or the whole file with the sidecar's MAC. A file nobody can vouch for
    is refused, and so is one whose MAC is not the bank's."""
    if key is None:
        raise Forbidden(
            "no_bank_key",
            "this gateway has no agent bank key configured, so no result file can be "
            "authenticated: start it with the bank's key file",
        )
    if key.signature == "sidecar":
        content, given = raw, (signature or "").strip()
        if not given:
            raise Forbidden(
                "unsigned",
                "the agent bank signs its result files apart (sidecar): the file's MAC is missing",
            )
    else:
        if signature:
            raise Forbidden(
                "unsigned", "the agent bank signs inside the file (a MAC line), not apart"
            )
        body = raw.rstrip(b"\r\n")
        cut = body.rfind(b"\n") + 1
        last = body[cut:].decode("ascii", "replace").strip()
        if not last.startswith(MAC_TAG + ","):
            raise Forbidden(
                "unsigned",
                f"the result file carries no signature line ({MAC_TAG},<hex> as its last "
                "line): it cannot be the agent bank's",
            )
        content, given = body[:cut], last[len(MAC_TAG) + 1 :]
    if not secrets.compare_digest(given.upper().encode(), key.sign(content).encode()):
        raise Forbidden(
            "bad_signature",
            f"the result file's {key.mac} MAC is not the agent bank's: the file was "
            "changed after the bank signed it, or it was not signed with the bank's key",
        )
    return content


# -- the result file --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResultLine:
    row: int
    seq: int
    card_number: str
    amount_fen: int
    reference: str
    paid: bool
    reason: str
    bank_ref: str


def _bad(row: int, what: str) -> Invalid:
    return Invalid("bad_result", f"result file line {row}: {what}")


def _number(row: int, field: str, text: str) -> int:
    if not _DIGITS.fullmatch(text) or len(text) > 15:
        raise _bad(row, f"{field} {text!r} is not a whole number of ASCII digits")
    return int(text)


def parse_result(raw: bytes) -> tuple[str, list[ResultLine]]:
    """The batch reference and the lines of a result file:
    H,batch,date,count,total_fen / D,seq,card,amount_fen,reference,S|F,reason,bank_ref / T,..."""
    if len(raw) > MAX_RESULT_BYTES:
        raise Invalid("too_large", f"a result file has at most {MAX_RESULT_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("bad_result", "a result file is UTF-8 text") from None
    if "\x00" in text:
        raise Invalid("bad_result", "a result file holds no NUL byte")
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if len(rows) < 2 or rows[0][0] != "H" or rows[-1][0] != "T":
        raise Invalid("bad_result", "a result file starts with an H line and ends with a T line")
    head, trailer = rows[0], rows[-1]
    if len(head) != 5 or len(trailer) != 3:
        raise _bad(1 if len(head) != 5 else len(rows), "H has 5 fields, T has 3")
    lines: list[ResultLine] = []
    for n, r in enumerate(rows[1:-1], 2):
        if len(r) != 8 or r[0] != "D":
            raise _bad(n, "a detail line is D,seq,card,amount_fen,reference,S|F,reason,bank_ref")
        if r[5] not in ("S", "F"):
            raise _bad(n, f"status {r[5]!r} is S (paid) or F (failed)")
        reason = r[6].strip()
        if r[5] == "F" and not reason:
            raise _bad(n, "a failed line says why")
        lines.append(
            ResultLine(
                n, _number(n, "seq", r[1]), r[2].strip(), _number(n, "amount", r[3]),
                r[4].strip(), r[5] == "S", reason[:MAX_REASON], r[7].strip()[:64],
            )
        )  # fmt: skip
    count, total = _number(len(rows), "count", trailer[1]), _number(len(rows), "total", trailer[2])
    if (count, total) != (len(lines), sum(x.amount_fen for x in lines)):
        raise _bad(
            len(rows),
            f"the totals line says {count} line(s), {total} fen; the file holds {len(lines)}, "
            f"{sum(x.amount_fen for x in lines)} fen",
        )
    return head[1].strip(), lines


def _named_batch(raw: bytes) -> str | None:
    """The batch reference a result file's first line names, before anything vouches for
    it: only to choose the key that must then verify the whole file."""
    first = raw[:200].split(b"\n", 1)[0].decode("utf-8-sig", "replace").split(",")
    return first[1].strip() if len(first) > 1 and first[0] == "H" else None


def _bank_of(db: Database, banks: Banks, raw: bytes) -> Bank:
    """The bank whose key must verify the file: the bank of the batch it names."""
    ref = _named_batch(raw)
    if ref is None:
        return banks.bank(None)
    with db.tx() as cur:
        cur.execute("SELECT bank_code FROM subsidy_bank_batches WHERE reference = ?", (ref,))
        row = cur.fetchone()
    return banks.bank(None if row is None else row[0])


@retried
def import_result(
    db: Database,
    raw: bytes,
    actor: str,
    key: Banks | BankKey | None,
    signature: str | None = None,
) -> dict[str, Any]:
    """Apply a bank result file, all or nothing, once the key of the bank its batch went to
    proves it that bank's (``signature``: the MAC handed over apart, for sidecar banks; see
    the module docstring)."""
    actor = check_actor(actor)
    if len(raw) > MAX_RESULT_BYTES:
        raise Invalid("too_large", f"a result file has at most {MAX_RESULT_BYTES} bytes")
    banks = agent_banks(key)
    signer = _bank_of(db, banks, raw) if banks is not None else None
    try:
        content = authenticate(signer.key if signer else None, raw, signature)
    except Forbidden as exc:
        if banks is None or signer is None or len(banks.banks) < 2:
            raise
        raise Forbidden(
            exc.code, f"{exc.reason} (the batch went to agent bank {signer.code}, {signer.name})"
        ) from None
    batch_ref, results = parse_result(content)
    digest = hashlib.sha256(raw).hexdigest()
    now = now_ms()
    with db.tx() as cur:
        batch = _batch_row(cur, batch_ref)
        if banks is not None and signer is not None and banks.bank(batch["bank"]) != signer:
            raise Forbidden(
                "wrong_bank",
                f"batch {batch_ref} went to agent bank {batch['bank']}, not {signer.code}",
            )
        cur.execute(
            "SELECT b.reference FROM subsidy_bank_results r JOIN subsidy_bank_batches b"
            " ON b.id = r.batch_id WHERE r.content_hash = ?",
            (digest,),
        )
        seen = cur.fetchone()
        if seen is not None:
            raise Conflict("replayed", f"this result file was imported already (batch {seen[0]})")
        sent = {x.reference: x for x in _batch_lines(cur, batch["id"])}
        named: set[str] = set()
        for r in results:
            x = sent.get(r.reference)
            where = f"result file line {r.row}: {r.reference!r}"
            if x is None or x.seq != r.seq:
                raise Conflict("unknown_line", f"{where} is no line of batch {batch_ref}")
            if r.reference in named:
                raise Conflict("duplicate_line", f"{where} appears twice in the file")
            named.add(r.reference)
            if r.card_number != x.card_number:
                raise Conflict(
                    "card_mismatch", f"{where} names card {r.card_number}; it was sent to "
                    f"{x.card_number}",
                )  # fmt: skip
            if r.amount_fen != x.amount_fen:
                raise Conflict(
                    "amount_mismatch",
                    f"{where} says {r.amount_fen} fen; {x.amount_fen} fen was sent",
                )
            if x.state != SENT:
                raise Conflict("already_settled", f"{where} is {x.state} already")
        paid = [r for r in results if r.paid]
        cur.execute(
            "INSERT INTO subsidy_bank_results (batch_id, content_hash, imported_by, imported_at,"
            " paid, failed, paid_fen) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (batch["id"], digest, actor, now, len(paid), len(results) - len(paid),
             sum(r.amount_fen for r in paid)),
        )  # fmt: skip
        result_id = int(cur.fetchone()[0])
        for r in results:
            x = sent[r.reference]
            state = PAID if r.paid else FAILED
            cur.execute(
                "UPDATE subsidy_bank_lines SET state = ?, reason = ?, bank_ref = ?, result_at = ?,"
                " result_id = ? WHERE id = ? AND state = 'sent'",
                (state, r.reason, r.bank_ref, now, result_id, x.id),
            )
            if cur.rowcount != 1:
                raise Conflict("already_settled", f"{r.reference} was settled meanwhile")
            note = f"{r.reference} {r.bank_ref}".strip() + (f": {r.reason}" if r.reason else "")
            line_event(cur, x.line_id, f"bank_{state}", actor, now, note)
        cur.execute(
            "UPDATE subsidy_bank_batches SET result_hash = ?, result_by = ?, result_at = ?"
            " WHERE id = ?",
            (digest, actor, now, batch["id"]),
        )
    return {
        "batch": batch_ref,
        "paid": len(paid),
        "paid_fen": sum(r.amount_fen for r in paid),
        "failed": [{"reference": r.reference, "reason": r.reason} for r in results if not r.paid],
    }


# -- tracking and funds -----------------------------------------------------------------------
def tracking(
    db: Database, *, today: date | None = None, calendar: Calendar | None = None,
    batch: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Every bank line with its tracked state (paid, failed, sent or overdue) and totals."""
    today = today or date.today()
    calendar = calendar or Calendar()
    with db.tx() as cur:
        if batch is not None:
            lines = _batch_lines(cur, _batch_row(cur, batch)["id"])
        else:
            cur.execute(_BANK_SELECT + " ORDER BY b.batch_id, b.seq")
            lines = [_bank_line(r) for r in cur.fetchall()]
    totals = {k: {"lines": 0, "amount_fen": 0} for k in (PAID, FAILED, SENT, OVERDUE)}
    for x in lines:
        t = totals[x.tracked(today, calendar)]
        t["lines"] += 1
        t["amount_fen"] += x.amount_fen
    return {
        "today": today.isoformat(),
        "totals": totals,
        "lines": [x.to_json(today, calendar) for x in lines],
    }


def funds(db: Database) -> dict[str, Any]:
    """Subsidy funds per item and period by channel (bank, kiosk e-purse), and, apart,
    the e-purse top-ups: subsidy money is never counted as a top-up."""
    with db.tx() as cur:
        cur.execute(
            "SELECT l.item, l.item_name, l.period,"
            " SUM(l.amount_fen),"
            " SUM(CASE WHEN b.state = 'paid' THEN l.amount_fen ELSE 0 END),"
            " SUM(CASE WHEN b.state = 'sent' THEN l.amount_fen ELSE 0 END),"
            " SUM(CASE WHEN ld.state = 'confirmed' THEN l.amount_fen ELSE 0 END),"
            " SUM(CASE WHEN ld.state = 'authorized' THEN l.amount_fen ELSE 0 END)"
            " FROM subsidy_lines l JOIN subsidy_rosters r ON r.id = l.roster_id"
            " LEFT JOIN subsidy_bank_lines b ON b.id = l.bank_line_id"
            " LEFT JOIN loads ld ON ld.id = l.load_id"
            " WHERE l.live = 1 AND r.state = 'approved'"
            " GROUP BY l.item, l.item_name, l.period ORDER BY l.item, l.period"
        )
        rows = cur.fetchall()
        cur.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM loads WHERE state = 'confirmed'"
            " AND purpose NOT LIKE ?",
            (SUBSIDY_PURPOSE + "%",),
        )
        top_count, top_fen = (int(x) for x in cur.fetchone())
    items = []
    for item, name, period, approved, bank_paid, at_bank, kiosk_paid, held in rows:
        approved, bank_paid, at_bank = int(approved), int(bank_paid), int(at_bank)
        kiosk_paid, held = int(kiosk_paid), int(held)
        items.append(
            {
                "item": item,
                "item_name": name,
                "period": period,
                "approved_fen": approved,
                "bank_paid_fen": bank_paid,
                "at_bank_fen": at_bank,
                "kiosk_paid_fen": kiosk_paid,
                "kiosk_held_fen": held,
                "unpaid_fen": approved - bank_paid - at_bank - kiosk_paid - held,
            }
        )
    sums = {
        k: sum(x[k] for x in items)
        for k in ("approved_fen", "bank_paid_fen", "at_bank_fen", "kiosk_paid_fen", "unpaid_fen")
    }
    return {"subsidies": items, "subsidy_totals": sums,
            "top_ups": {"loads": top_count, "amount_fen": top_fen}}  # fmt: skip
