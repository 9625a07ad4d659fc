"""The canteen POS (消费): meal periods, per-meal and per-day limits, two purses, receipts.

The card is authenticated as at the door (the SAM checks its key) and checked against the
hotlist; the meal is the period the clock is in (rules as a strict TOML file); what the
person spent in this meal and today, on either purse, is kept in the canteen's local store
and limits the sale. The **allowance** purse (补助) is an account at the gateway: a sale
from it is an online request named by the canteen's sale number, so it needs the gateway
and a lost card's allowance cannot be spent anywhere once reported. The **cash** purse is
the card's e-purse, debited offline through the one journaled debit path.

```
day_limit = 6000           # fen per person per day, both purses
[meals.lunch]
from = "10:30"
until = "13:30"
limit = 2500               # fen per person in this meal
```
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from time import monotonic
from typing import Any

from terminal.apdu.errors import CardError, MalformedResponse, TransportError, YikatongError
from terminal.campus.card import CampusCard, NotGenuine, authenticate
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.money import format_fen
from terminal.roles.pos import CardRefused, PointOfSale
from terminal.roles.receipt import Receipt
from terminal.roles.session import TerminalSession
from terminal.sqlite import connect, transaction
from terminal.text import FileError
from terminal.tomlfile import ANY_KEYS, TomlFile, read_toml
from terminal.uplink import GatewayClient, GatewayRefused, GatewayUnavailable

SPEND_PATH = "/v1/campus/allowance/spend"
VOID_PATH = "/v1/campus/allowance/void"
ALLOWANCE, CASH = "allowance", "cash"
# A void is a small request: a gateway that does not answer it within VOID_WAIT seconds is
# taken as away, and a cash sale (which needs no gateway) does not try the voids again for
# VOID_BACKOFF seconds; the voids stay in the ledger and idle time keeps trying.
VOID_WAIT = 1.0
VOID_BACKOFF = 30.0
PURSES = (ALLOWANCE, CASH)
SCHEMA: dict[str, Any] = {"meals": ANY_KEYS, "day_limit": None}
MEAL_KEYS = {"from": None, "until": None, "limit": None}

_SALES_SCHEMA = """
CREATE TABLE IF NOT EXISTS sales (
    sale_seq INTEGER PRIMARY KEY AUTOINCREMENT, person_no TEXT NOT NULL,
    card_serial TEXT NOT NULL, day TEXT NOT NULL, meal TEXT NOT NULL, purse TEXT NOT NULL,
    amount INTEGER NOT NULL, state TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS void_refusals (
    sale_seq INTEGER PRIMARY KEY REFERENCES sales, code TEXT NOT NULL, reason TEXT NOT NULL
);
"""
MAX_VOID_REASON = 300  # characters of a gateway's refusal kept with the sale


log = logging.getLogger(__name__)


class CanteenRefused(YikatongError):
    """The sale is refused before or instead of any payment; the message says why."""


@dataclass(frozen=True)
class Meal:
    name: str
    start: time
    end: time
    limit: int  # fen per person in this meal


@dataclass(frozen=True)
class CanteenRules:
    meals: dict[str, Meal]
    day_limit: int

    def meal_at(self, when: datetime) -> Meal | None:
        return next((m for m in self.meals.values() if m.start <= when.time() < m.end), None)


class _RulesFile(TomlFile):
    what = "canteen rules file"


def _fen(f: _RulesFile, value: Any, keys: tuple[str, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise f.error(keys, f"{'.'.join(keys)} must be a whole number of fen > 0")
    return value


def _clock(f: _RulesFile, value: Any, keys: tuple[str, ...]) -> time:
    try:
        return time.fromisoformat(f.text_value(value, keys))
    except ValueError:
        raise f.error(keys, f"{'.'.join(keys)} must be a time like 11:00") from None


def parse_canteen_rules(data: dict[str, Any], *, path: str | Path, text: str) -> CanteenRules:
    f = _RulesFile(data, str(path), text)
    f.check_keys(data, SCHEMA, ())
    if "day_limit" not in data:
        raise f.error((), "the canteen rules need day_limit (fen per person per day)")
    meals: dict[str, Meal] = {}
    for name, m in data.get("meals", {}).items():
        at = ("meals", name)
        f.check_keys(m, MEAL_KEYS, at)
        for key in MEAL_KEYS:
            if key not in m:
                raise f.error(at, f"meals.{name} is missing {key!r}")
        meal = Meal(
            name,
            _clock(f, m["from"], (*at, "from")),
            _clock(f, m["until"], (*at, "until")),
            _fen(f, m["limit"], (*at, "limit")),
        )
        if meal.end <= meal.start:
            raise f.error((*at, "until"), f"meals.{name}.until must be after from")
        for other in meals.values():
            if meal.start < other.end and other.start < meal.end:
                raise f.error(at, f"meals.{name} overlaps meals.{other.name}")
        meals[name] = meal
    return CanteenRules(meals, _fen(f, data["day_limit"], ("day_limit",)))


def load_canteen_rules(path: str | Path) -> CanteenRules:
    text, data = read_toml(path, "canteen rules file", lambda w, n: FileError(path, n, w))
    return parse_canteen_rules(data, path=path, text=text)


class SalesLedger:
    """The canteen's own sales (either purse), numbered: the limits' memory, and the number
    an allowance spend is known by at the gateway."""

    def __init__(self, path: str | Path | None = None):
        self._lock = threading.RLock()
        self._db = connect(path)
        self._db.executescript(_SALES_SCHEMA)

    def open(
        self, person: str, serial: str, when: datetime, meal: str, purse: str, amount: int
    ) -> int:
        with self._lock, transaction(self._db) as db:
            cur = db.execute(
                "INSERT INTO sales (person_no, card_serial, day, meal, purse, amount, state, at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'open', ?)",
                (person, serial, when.date().isoformat(), meal, purse, amount, when.isoformat()),
            )
            return int(cur.lastrowid or 0)

    def unanswered(self) -> list[int]:
        """The allowance sales whose gateway answer was lost, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sale_seq FROM sales WHERE state = 'unanswered' ORDER BY sale_seq"
            ).fetchall()
        return [int(r[0]) for r in rows]

    def state(self, seq: int) -> str | None:
        with self._lock:
            r = self._db.execute("SELECT state FROM sales WHERE sale_seq = ?", (seq,)).fetchone()
        return None if r is None else str(r[0])

    def close_sale(self, seq: int, state: str) -> None:
        """``paid``, ``refused``, ``unanswered`` (the gateway's answer was lost) or
        ``voided`` (an unanswered sale the gateway has since voided)."""
        with self._lock, transaction(self._db) as db:
            db.execute("UPDATE sales SET state = ? WHERE sale_seq = ?", (state, seq))

    def void_refused(self, seq: int, code: str, reason: str) -> tuple[str, str]:
        """The gateway refused the void of unanswered sale ``seq`` for good: the sale is
        ``void_refused``, kept with the gateway's code and reason for the back office to
        settle, and not sent again. The code and reason as kept (one line each, bounded)."""
        code, reason = (" ".join(t.split())[:MAX_VOID_REASON] for t in (code, reason))
        with self._lock, transaction(self._db) as db:
            db.execute("UPDATE sales SET state = 'void_refused' WHERE sale_seq = ?", (seq,))
            db.execute("INSERT OR REPLACE INTO void_refusals VALUES (?, ?, ?)", (seq, code, reason))
        return code, reason

    def refused_voids(self) -> list[tuple[int, str, str]]:
        """(sale number, the gateway's code, its reason) of each void refused, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sale_seq, code, reason FROM void_refusals ORDER BY sale_seq"
            ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def spent(self, person: str, day: str, meal: str | None = None) -> int:
        """What ``person`` paid on ``day`` (in ``meal``); a sale the gateway may have taken
        (unanswered, or its void refused) counts."""
        sql = "SELECT COALESCE(SUM(amount), 0) FROM sales WHERE person_no = ? AND day = ?"
        sql += " AND state IN ('paid', 'unanswered', 'void_refused')"
        args: tuple[Any, ...] = (person, day)
        if meal is not None:
            sql += " AND meal = ?"
            args += (meal,)
        with self._lock:
            return int(self._db.execute(sql, args).fetchone()[0])

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class MealSale:
    purse: str
    amount: int
    meal: str
    person_no: str
    balance_after: int
    sale_seq: int
    receipt: Receipt


class Canteen:
    """One canteen till: the card reader and SAM, the journal (cash), the gateway (allowance)."""

    def __init__(
        self,
        session: TerminalSession,
        journal: Journal,
        rules: CanteenRules,
        hotlist: Hotlist,
        ledger: SalesLedger,
        client: GatewayClient | None,
        *,
        merchant: str = "canteen 食堂",
    ):
        self.session = session
        self.rules = rules
        self.hotlist = hotlist
        self.ledger = ledger
        self.client = client
        self.merchant = merchant
        self.pos = PointOfSale(session, journal, name="canteen", hotlist=hotlist)
        self._voids_after = 0.0  # monotonic time before which a cash sale skips the voids

    def sell(self, amount: int, purse: str) -> MealSale:
        """Charge ``amount`` fen for the card in the field from ``purse``; CanteenRefused."""
        if purse not in PURSES or amount <= 0:
            raise CanteenRefused(f"a sale is a positive amount from one of {PURSES}")
        if purse == ALLOWANCE or monotonic() >= self._voids_after:
            self.resolve_unanswered()
        now = self.session.now()
        meal = self.rules.meal_at(now)
        if meal is None:
            raise CanteenRefused(f"no meal is served at {now:%H:%M}")
        card = self._card()
        person = card.identity.person_no
        day = now.date().isoformat()
        in_meal = self.ledger.spent(person, day, meal.name)
        if in_meal + amount > meal.limit:
            raise CanteenRefused(
                f"over the {meal.name} limit: {format_fen(in_meal)} spent of "
                f"{format_fen(meal.limit)}"
            )
        today = self.ledger.spent(person, day)
        if today + amount > self.rules.day_limit:
            raise CanteenRefused(
                f"over the day's limit: {format_fen(today)} spent of "
                f"{format_fen(self.rules.day_limit)}"
            )
        if purse == ALLOWANCE and self.client is None:
            raise CanteenRefused("the allowance purse needs the gateway (offline): pay cash")
        seq = self.ledger.open(person, card.serial_hex, now, meal.name, purse, amount)
        if purse == ALLOWANCE:
            after = self._spend_allowance(seq, card, meal.name, amount)
        else:
            try:
                after = self.pos.pay(card.info, amount).balance_after
            except BaseException:
                self.ledger.close_sale(seq, "refused")
                raise
        self.ledger.close_sale(seq, "paid")
        return MealSale(
            purse,
            amount,
            meal.name,
            person,
            after,
            seq,
            self._receipt(card, now, meal.name, purse, amount, after, seq),
        )

    def resolve_unanswered(self) -> int:
        """Void at the gateway, by sale number, each allowance sale whose answer was lost
        (the customer was refused and paid otherwise): refunded there if it was taken,
        refused there if it arrives later. Each void waits at most ``VOID_WAIT`` seconds;
        while the gateway is away they stay in the ledger for the next chance (a cash sale
        tries again after ``VOID_BACKOFF``). A void the gateway refuses for good (a 4xx
        about the void, not about the till's token) is recorded refused with its code and
        reason and not sent again, so it holds no later void. How many were voided."""
        if self.client is None:
            return 0
        done = 0
        for seq in self.ledger.unanswered():
            body = {"terminal_id": self.session.sam.terminal_id_hex, "sale_seq": seq}
            try:
                self.client.request("POST", VOID_PATH, json=body, timeout=VOID_WAIT)
            except GatewayRefused as exc:
                if exc.retry_later:
                    self._hold_voids(seq, exc)
                    break
                code, reason = self.ledger.void_refused(seq, exc.code, exc.reason)
                log.error(
                    "canteen: the gateway refused the void of sale %d (%d %s): %s; kept in the"
                    " ledger for the back office, not sent again",
                    seq,
                    exc.status,
                    code,
                    reason,
                )
                continue
            except GatewayUnavailable as exc:
                self._hold_voids(seq, exc)
                break
            self.ledger.close_sale(seq, "voided")
            done += 1
        return done

    def _hold_voids(self, seq: int, exc: Exception) -> None:
        log.warning("canteen: unanswered sale %d not resolved yet: %s", seq, exc)
        self._voids_after = monotonic() + VOID_BACKOFF

    def _card(self) -> CampusCard:
        try:
            card = self.session.run(authenticate())
        except NotGenuine as exc:
            raise CanteenRefused(f"not a genuine campus card: {exc}") from None
        except (CardError, TransportError, MalformedResponse) as exc:
            raise CanteenRefused(f"card not read: {exc}") from None
        if card.serial in self.hotlist:
            raise CanteenRefused("card reported lost or blocked (hotlist)")
        try:
            self.pos.check_card(card.info)
        except CardRefused as exc:
            raise CanteenRefused(str(exc)) from None
        return card

    def _spend_allowance(self, seq: int, card: CampusCard, meal: str, amount: int) -> int:
        assert self.client is not None
        body = {
            "terminal_id": self.session.sam.terminal_id_hex,
            "sale_seq": seq,
            "card_serial": card.serial_hex,
            "person_no": card.identity.person_no,
            "amount_fen": amount,
            "meal": meal,
        }
        try:
            answer = self.client.request("POST", SPEND_PATH, json=body)
        except GatewayRefused as exc:
            self.ledger.close_sale(seq, "refused")
            raise CanteenRefused(f"allowance refused: {exc}") from None
        except GatewayUnavailable as exc:
            self.ledger.close_sale(seq, "unanswered")
            raise CanteenRefused(
                f"the allowance purse needs the gateway, which did not answer ({exc}): pay cash;"
                f" sale {seq} is voided at the gateway at the next chance"
            ) from None
        return int(answer["balance_fen"])

    def _receipt(
        self,
        card: CampusCard,
        when: datetime,
        meal: str,
        purse: str,
        amount: int,
        after: int,
        seq: int,
    ) -> Receipt:
        return Receipt(
            f"{meal} sale",
            self.session.sam.terminal_id_hex,
            when,
            card.info.card_number,
            rows=[
                ("Sale", str(seq)),
                ("Person", card.identity.person_no),
                ("Paid from", "allowance 补助" if purse == ALLOWANCE else "cash purse"),
                ("Amount", format_fen(amount)),
                ("Balance", format_fen(after)),
            ],
            heading=self.merchant,
        )
