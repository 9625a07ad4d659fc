"""A software JT/T 978 / PBOC EP card that behaves like the real one.

Files 0x15-0x18, 0x1A, 0x1E; offline and online counters; overdraft limit; a 10-record
cyclic log (newest first); purchase, CAPP purchase, load and GET TRANSACTION PROVE with
real session keys diversified from issuer master keys; PIN tries; application block.
State lives in a JSON-serialisable dataclass and can be saved to a file after every
committed change, so a card survives restarts. Session state (selection, INITIALIZE,
challenge) is volatile, as on a real card, and is lost on reset.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from simulators import statefile as sf
from terminal.apdu import tlv
from terminal.apdu.bcd import encode_pin
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MacMismatch, MalformedApdu
from terminal.apdu.iso import IsoIns
from terminal.apdu.status import SW, wrong_le, wrong_pin
from terminal.campus import card as campus
from terminal.crypto.keys import (
    Algorithm,
    load_session_key,
    purchase_session_key,
)
from terminal.crypto.keyset import CardKeys
from terminal.crypto.mac import mac_alg3, pad_method2
from terminal.epurse import commands as c
from terminal.epurse import cryptograms
from terminal.epurse.layouts import (
    Balance,
    BalanceWord,
    CreditData,
    DebitData,
    InitializeData,
    InitLoadResponse,
    InitPurchaseResponse,
    TransactionRecord,
)
from terminal.layout import build

DEFAULT_ATR = bytes.fromhex("3B8880010000000000718100F9")  # contactless-style, T=1
LOG_SIZE = 10
TRIP_LOG_SIZE = 30
TRIP_RECORD_LEN = 48
CAPP_RECORD_LEN = 128
CAPP_RECORDS = 18  # 2701..2712
MAX_COUNTER = 0xFFFF
DEFAULT_MAX_BALANCE = 100_000  # 1000.00 yuan, a common purse ceiling
PIN_TRIES = 3

PROVE_NEXT = "next"  # GET TRANSACTION PROVE takes the counter after the transaction (ATC+1)
PROVE_SAME = "same"  # ... or the counter the transaction used


class CardReply(Exception):
    """Internal: stop processing and answer with this status word."""

    def __init__(self, sw: int, data: bytes = b""):
        super().__init__(f"{sw:04X}")
        self.sw = sw
        self.data = data


def _hex(b: bytes) -> str:
    return b.hex().upper()


def _when(data: Any) -> datetime:
    """The date and time a DEBIT or CREDIT carries (an all-zero date carries no valid MAC)."""
    if data.date is None:
        raise CardReply(SW.MAC_ERROR)
    return datetime.combine(data.date, data.time)


def _empty_capp_record(n: int) -> str:
    """A personalised but unused 0x1A record: header 27 xx 7D, then zeros."""
    return _hex(bytes((0x27, n, 0x7D)) + bytes(CAPP_RECORD_LEN - 3))


@dataclass
class EPurseState:
    """Everything the card keeps in EEPROM (hex strings for bytes, so it serialises as JSON)."""

    public_info: str  # 0x15, 30 bytes
    holder: str  # 0x16, 55 bytes
    management: str  # 0x17, 60 bytes
    keys: dict[str, str]  # purchase, load, tac, maintenance (16-byte card keys)
    key_index: int = 1  # index the PSAMs use for this card's purchase key
    load_key_index: int = 1
    key_version: int = 1
    algorithm: int = Algorithm.DES3
    balance: int = 0
    overdraft_limit: int = 0  # reported in INITIALIZE; debits never draw on it here
    max_balance: int = DEFAULT_MAX_BALANCE
    # hostile option: answer GET BALANCE and INITIALIZE FOR PURCHASE with the balance
    # word's top bit set (seen on real cards; its meaning is not public)
    balance_flag: bool = False
    offline_atc: int = 0
    online_atc: int = 0
    log: list[str] = field(default_factory=list)  # 0x18, newest first
    trips: list[str] = field(default_factory=list)  # 0x1E, newest first
    capp: dict[str, str] = field(default_factory=dict)  # 0x1A records by id "27xx"
    pin: str = "123456"
    pin_tries: int = PIN_TRIES
    blocked: str = ""  # "", "temporary" or "permanent"
    last_txn: dict[str, Any] = field(default_factory=dict)  # for GET TRANSACTION PROVE
    prove_counter: str = PROVE_NEXT
    atr: str = _hex(DEFAULT_ATR)
    # campus application (docs/campus.md): internal authentication key and identity file
    campus_key: str = ""
    campus_identity: str = ""


KEY_NAMES = ("purchase", "load", "tac", "maintenance")


def _check_last_txn(v: Any) -> str | None:
    """Empty, or the proof GET TRANSACTION PROVE returns: type, atc, mac and tac."""
    if v == {}:
        return None
    if not isinstance(v, dict) or set(v) != {"type", "atc", "mac", "tac"}:
        return "must be {} or an object with type, atc, mac and tac"
    return (
        sf.integer(0xFF)(v["type"])
        or sf.integer(MAX_COUNTER)(v["atc"])
        or sf.hex_string(4)(v["mac"])
        or sf.hex_string(4)(v["tac"])
    )


_BYTE, _WORD, _AMOUNT = sf.integer(0xFF), sf.integer(MAX_COUNTER), sf.integer(0x7FFF_FFFF)
STATE_CHECKS: dict[str, sf.Check] = {
    "public_info": sf.hex_string(30),
    "holder": sf.hex_string(55),
    "management": sf.hex_string(60),
    "keys": sf.hex_map(16),
    "key_index": _BYTE,
    "load_key_index": _BYTE,
    "key_version": _BYTE,
    "algorithm": _BYTE,
    "balance": _AMOUNT,
    "overdraft_limit": sf.integer(0xFF_FFFF),
    "max_balance": _AMOUNT,
    "balance_flag": sf.flag,
    "offline_atc": _WORD,
    "online_atc": _WORD,
    "log": sf.hex_list(23, LOG_SIZE),
    "trips": sf.hex_list(48, TRIP_LOG_SIZE),
    "capp": sf.hex_map(CAPP_RECORD_LEN),
    "pin": sf.digits_text,
    "pin_tries": sf.integer(PIN_TRIES),
    "blocked": sf.one_of("", "temporary", "permanent"),
    "last_txn": _check_last_txn,
    "prove_counter": sf.one_of(PROVE_NEXT, PROVE_SAME),
    "atr": sf.hex_string(),
    "campus_key": sf.optional(sf.hex_string(16)),
    "campus_identity": sf.optional(sf.hex_string(campus.IDENTITY_LEN)),
}


@dataclass
class _Session:
    """Volatile state between INITIALIZE and DEBIT/CREDIT."""

    kind: str  # "purchase", "capp", "load"
    amount: int
    terminal_id: bytes
    random: bytes
    atc: int
    key: bytes = b""
    staged_capp: dict[str, bytes] = field(default_factory=dict)
    staged_trips: list[bytes] = field(default_factory=list)


class SoftEPurseCard(sf.SavedDevice):
    """The card. ``process`` takes a command APDU and returns the response bytes."""

    kind = "epurse"

    def __init__(self, state: EPurseState, path: str | Path | None = None):
        self.state = state
        self.path = Path(path) if path is not None else None
        self._selected = False
        self._session: _Session | None = None
        self._challenge: bytes | None = None
        self._rng = secrets.token_bytes

    # -- persistence --------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> SoftEPurseCard:
        """The card saved in ``path``; FileError (file, line, what) if it is not one."""
        doc = sf.read_document(path, ("epurse",), "software e-purse card")
        state = sf.state_of(doc, EPurseState, STATE_CHECKS)
        if set(state.keys) != set(KEY_NAMES):
            raise doc.fail("keys", f"keys must be exactly {', '.join(KEY_NAMES)}")
        if state.balance > state.max_balance:
            raise doc.fail("balance", f"balance {state.balance} is above max_balance")
        return cls(state, path)

    # -- convenience for tests and display ---------------------------------------------
    @property
    def public_info(self) -> bytes:
        return bytes.fromhex(self.state.public_info)

    @property
    def serial(self) -> bytes:
        return self.public_info[12:20]

    @property
    def issuer_id(self) -> bytes:
        return self.public_info[0:8]

    @property
    def balance(self) -> int:
        return self.state.balance

    def card_keys(self) -> CardKeys:
        k = self.state.keys
        return CardKeys(*(bytes.fromhex(k[n]) for n in ("purchase", "load", "tac", "maintenance")))

    def reset(self) -> None:
        """Power-on reset: volatile state is lost."""
        self._selected = False
        self._session = None
        self._challenge = None

    # -- APDU processing ------------------------------------------------------------------
    def process(self, apdu: bytes) -> bytes:
        try:
            command = CommandAPDU.decode(apdu)
        except MalformedApdu:
            return SW.WRONG_LENGTH.to_bytes(2, "big")
        try:
            data = self._dispatch(command)
        except CardReply as reply:
            return reply.data + reply.sw.to_bytes(2, "big")
        return data + SW.OK.to_bytes(2, "big")

    def _dispatch(self, cmd: CommandAPDU) -> bytes:
        handler = _HANDLERS.get((cmd.cla & 0xF0, cmd.ins))
        if handler is None:
            if cmd.ins in {ins for _, ins in _HANDLERS}:
                raise CardReply(SW.CLA_NOT_SUPPORTED)
            raise CardReply(SW.INS_NOT_SUPPORTED)
        if handler is not SoftEPurseCard._select:
            if not self._selected:
                raise CardReply(SW.CONDITIONS)
            if self.state.blocked == "permanent":
                raise CardReply(SW.APP_LOCKED)
            if self.state.blocked and cmd.ins not in (
                IsoIns.READ_BINARY,
                IsoIns.READ_RECORD,
                c.Ins.GET_BALANCE,
                IsoIns.GET_CHALLENGE,
                c.Ins.APPLICATION_UNBLOCK,
            ):
                raise CardReply(SW.FUNCTION_NOT_SUPPORTED)
        return handler(self, cmd)

    # SELECT -------------------------------------------------------------------------------
    def _select(self, cmd: CommandAPDU) -> bytes:
        self._session = None
        aid = bytes.fromhex("A000000632010105")
        if cmd.p1 == 0x04:
            if cmd.data != aid[: len(cmd.data)] or not cmd.data:
                self._selected = False
                raise CardReply(SW.FILE_NOT_FOUND)
        elif cmd.p1 == 0x00:
            if cmd.data not in (c.FID_EP.to_bytes(2, "big"), c.FID_MF.to_bytes(2, "big")):
                raise CardReply(SW.FILE_NOT_FOUND)
            if cmd.data == c.FID_MF.to_bytes(2, "big"):
                self._selected = False
                return b""
        else:
            raise CardReply(SW.WRONG_P1P2)
        if self.state.blocked == "permanent":
            self._selected = False
            raise CardReply(SW.APP_LOCKED)
        self._selected = True
        fci = tlv.build(
            0x6F,
            [
                tlv.build(0x84, aid),
                tlv.build(
                    0xA5,
                    [
                        tlv.build(0x9F08, bytes((self.public_info[9],))),
                        tlv.build(0x9F0C, self.public_info),
                    ],
                ),
            ],
        ).encode()
        if self.state.blocked:
            raise CardReply(SW.SELECTED_FILE_INVALIDATED, fci)
        return fci

    # READ BINARY / READ RECORD -----------------------------------------------------------
    def _binary_file(self, sfi: int) -> bytes:
        files = {
            c.SFI_PUBLIC_INFO: self.state.public_info,
            c.SFI_CARDHOLDER: self.state.holder,
            c.SFI_MANAGEMENT: self.state.management,
        }
        if self.state.campus_identity:
            files[campus.SFI_IDENTITY] = self.state.campus_identity
        if sfi not in files:
            raise CardReply(SW.FILE_NOT_FOUND)
        return bytes.fromhex(files[sfi])

    @staticmethod
    def _slice(content: bytes, le: int | None) -> bytes:
        if le is None or le == 256 or le == len(content):
            return content
        if le > len(content):
            raise CardReply(wrong_le(len(content)))
        return content[:le]

    def _read_binary(self, cmd: CommandAPDU) -> bytes:
        if not cmd.p1 & 0x80:
            raise CardReply(SW.WRONG_P1P2)
        content = self._binary_file(cmd.p1 & 0x1F)
        if cmd.p2 > len(content):
            raise CardReply(SW.WRONG_P1P2)
        return self._slice(content[cmd.p2 :], cmd.le)

    def _read_record(self, cmd: CommandAPDU) -> bytes:
        sfi, mode = cmd.p2 >> 3, cmd.p2 & 0x07
        if mode != 0x04:
            raise CardReply(SW.WRONG_P1P2)
        number = cmd.p1
        if sfi == c.SFI_TXN_LOG:
            records = self.state.log
        elif sfi == c.SFI_TRIP:
            records = self.state.trips
        elif sfi == c.SFI_CAPP_VARIABLE:
            records = [
                self.state.capp.get(f"27{n:02X}", _empty_capp_record(n))
                for n in range(1, CAPP_RECORDS + 1)
            ]
        else:
            raise CardReply(SW.FILE_NOT_FOUND)
        if not 1 <= number <= len(records):
            raise CardReply(SW.RECORD_NOT_FOUND)
        return self._slice(bytes.fromhex(records[number - 1]), cmd.le)

    # GET BALANCE ---------------------------------------------------------------------------
    def _get_balance(self, cmd: CommandAPDU) -> bytes:
        if cmd.p2 != c.PURSE_EP or cmd.p1 not in (0x00, 0x03):
            raise CardReply(SW.WRONG_P1P2)
        return build(Balance, balance=self._balance_word())

    def _balance_word(self) -> BalanceWord:
        return BalanceWord(self.state.balance, self.state.balance_flag)

    # INITIALIZE ----------------------------------------------------------------------------
    def _initialize(self, cmd: CommandAPDU) -> bytes:
        self._session = None
        if cmd.p2 != c.PURSE_EP:
            raise CardReply(SW.WRONG_P1P2)
        if len(cmd.data) != 11:
            raise CardReply(SW.WRONG_LENGTH)
        init = InitializeData.parse(cmd.data)
        st = self.state
        if cmd.p1 in (c.InitP1.PURCHASE, c.InitP1.CAPP_PURCHASE):
            if init.key_index != st.key_index:
                raise CardReply(SW.KEY_NOT_FOUND)
            if st.offline_atc >= MAX_COUNTER:
                raise CardReply(SW.CONDITIONS)
            if init.amount > st.balance:
                raise CardReply(SW.INSUFFICIENT_BALANCE)
            rand = self._rng(4)
            kind = "capp" if cmd.p1 == c.InitP1.CAPP_PURCHASE else "purchase"
            self._session = _Session(kind, init.amount, init.terminal_id, rand, st.offline_atc)
            return build(
                InitPurchaseResponse,
                balance=self._balance_word(),
                offline_atc=st.offline_atc,
                overdraft_limit=st.overdraft_limit,
                key_version=st.key_version,
                algorithm=st.algorithm,
                card_random=rand,
            )
        if cmd.p1 == c.InitP1.LOAD:
            if init.key_index != st.load_key_index:
                raise CardReply(SW.KEY_NOT_FOUND)
            if st.online_atc >= MAX_COUNTER:
                raise CardReply(SW.CONDITIONS)
            if st.balance + init.amount > st.max_balance:
                raise CardReply(SW.CONDITIONS)
            rand = self._rng(4)
            key = load_session_key(self.card_keys().load, rand, st.online_atc, st.algorithm)
            mac1 = cryptograms.load_mac1(
                key, balance=st.balance, amount=init.amount, terminal_id=init.terminal_id
            )
            self._session = _Session(
                "load", init.amount, init.terminal_id, rand, st.online_atc, key
            )
            return build(
                InitLoadResponse,
                balance=st.balance,
                online_atc=st.online_atc,
                key_version=st.key_version,
                algorithm=st.algorithm,
                card_random=rand,
                mac1=mac1,
            )
        raise CardReply(SW.WRONG_P1P2)

    # UPDATE CAPP DATA CACHE -----------------------------------------------------------------
    def _update_capp_cache(self, cmd: CommandAPDU) -> bytes:
        s = self._session
        if s is None or s.kind != "capp":
            raise CardReply(SW.CONDITIONS)
        sfi = cmd.p2 >> 3
        if sfi == c.SFI_TRIP:
            if len(cmd.data) != TRIP_RECORD_LEN:
                raise CardReply(SW.WRONG_LENGTH)
            s.staged_trips.append(cmd.data)
            return b""
        if sfi == c.SFI_CAPP_VARIABLE:
            record = cmd.data
            if (
                len(record) != CAPP_RECORD_LEN
                or record[0] != 0x27
                or record[2] != 0x7D
                or not 1 <= record[1] <= CAPP_RECORDS
            ):
                raise CardReply(SW.CAPP_CACHE_FAILED)
            if cmd.p1 not in (0x00, record[1]):
                raise CardReply(SW.WRONG_P1P2)
            s.staged_capp[_hex(record[:2])] = record
            return b""
        raise CardReply(SW.FILE_NOT_FOUND)

    # DEBIT FOR PURCHASE ------------------------------------------------------------------
    def _debit(self, cmd: CommandAPDU) -> bytes:
        s, st = self._session, self.state
        self._session = None
        if s is None or s.kind not in ("purchase", "capp") or cmd.p1 != 0x01:
            raise CardReply(SW.CONDITIONS)
        if len(cmd.data) != 15:
            raise CardReply(SW.WRONG_LENGTH)
        d = DebitData.parse(cmd.data)
        txn_type = c.TxnType.CAPP_PURCHASE if s.kind == "capp" else c.TxnType.EP_PURCHASE
        key = purchase_session_key(
            self.card_keys().purchase, s.random, s.atc, d.terminal_seq, st.algorithm
        )
        when = _when(d)
        try:
            cryptograms.verify_purchase_mac1(
                key,
                d.mac1,
                amount=s.amount,
                txn_type=txn_type,
                terminal_id=s.terminal_id,
                when=when,
            )
        except MacMismatch:
            raise CardReply(SW.MAC_ERROR) from None
        if s.amount > st.balance:
            raise CardReply(SW.INSUFFICIENT_BALANCE)
        # commit: balance, counter, log, cached CAPP records, proof - all at once
        st.balance -= s.amount
        st.offline_atc += 1
        self._append_log(s.atc, s.amount, txn_type, s.terminal_id, d.date, d.time)
        for trip in s.staged_trips:
            st.trips.insert(0, _hex(trip))
        del st.trips[TRIP_LOG_SIZE:]
        for rid, record in s.staged_capp.items():
            st.capp[rid] = _hex(record)
        mac2 = cryptograms.purchase_mac2(key, amount=s.amount)
        tac = cryptograms.purchase_tac(
            self.card_keys().tac,
            amount=s.amount,
            txn_type=txn_type,
            terminal_id=s.terminal_id,
            terminal_seq=d.terminal_seq,
            when=when,
        )
        st.last_txn = {"type": int(txn_type), "atc": s.atc, "mac": _hex(mac2), "tac": _hex(tac)}
        self._commit()
        return tac + mac2

    # CREDIT FOR LOAD ---------------------------------------------------------------------
    def _credit(self, cmd: CommandAPDU) -> bytes:
        s, st = self._session, self.state
        self._session = None
        if s is None or s.kind != "load":
            raise CardReply(SW.CONDITIONS)
        if len(cmd.data) != 11:
            raise CardReply(SW.WRONG_LENGTH)
        d = CreditData.parse(cmd.data)
        when = _when(d)
        try:
            cryptograms.verify_load_mac2(
                s.key, d.mac2, amount=s.amount, terminal_id=s.terminal_id, when=when
            )
        except MacMismatch:
            raise CardReply(SW.MAC_ERROR) from None
        st.balance += s.amount
        st.online_atc += 1
        self._append_log(s.atc, s.amount, c.TxnType.EP_LOAD, s.terminal_id, d.date, d.time)
        tac = cryptograms.load_tac(
            self.card_keys().tac,
            new_balance=st.balance,
            online_atc=s.atc,
            amount=s.amount,
            terminal_id=s.terminal_id,
            when=when,
        )
        st.last_txn = {
            "type": int(c.TxnType.EP_LOAD),
            "atc": s.atc,
            "mac": _hex(d.mac2),
            "tac": _hex(tac),
        }
        self._commit()
        return tac

    def _append_log(
        self, atc: int, amount: int, txn_type: int, terminal_id: bytes, day: date, t: Any
    ) -> None:
        record = build(
            TransactionRecord,
            atc=atc,
            overdraft_limit=self.state.overdraft_limit,
            amount=amount,
            txn_type=txn_type,
            terminal_id=terminal_id,
            date=day,
            time=bytes.fromhex(t.strftime("%H%M%S")),
        )
        self.state.log.insert(0, _hex(record))
        del self.state.log[LOG_SIZE:]

    # GET TRANSACTION PROVE ------------------------------------------------------------------
    def _prove(self, cmd: CommandAPDU) -> bytes:
        last = self.state.last_txn
        if len(cmd.data) != 2:
            raise CardReply(SW.WRONG_LENGTH)
        asked = int.from_bytes(cmd.data, "big")
        if not last or last["type"] != cmd.p2:
            raise CardReply(SW.MAC_UNAVAILABLE)
        expected = last["atc"] + 1 if self.state.prove_counter == PROVE_NEXT else last["atc"]
        if asked != expected:
            raise CardReply(SW.MAC_UNAVAILABLE)
        return bytes.fromhex(last["mac"]) + bytes.fromhex(last["tac"])

    # PIN ---------------------------------------------------------------------------------
    def _verify(self, cmd: CommandAPDU) -> bytes:
        st = self.state
        if st.pin_tries == 0:
            raise CardReply(SW.PIN_BLOCKED)
        if secrets.compare_digest(cmd.data, encode_pin(st.pin)):
            st.pin_tries = PIN_TRIES
            self._commit()
            return b""
        st.pin_tries -= 1
        self._commit()
        if st.pin_tries == 0:
            raise CardReply(SW.PIN_BLOCKED)
        raise CardReply(wrong_pin(st.pin_tries))

    # GET CHALLENGE / APPLICATION BLOCK -----------------------------------------------------
    def _get_challenge(self, cmd: CommandAPDU) -> bytes:
        n = cmd.le or 4
        if n not in (4, 8):
            raise CardReply(SW.WRONG_LENGTH)
        self._challenge = self._rng(n)
        return self._challenge

    def _check_secure_mac(self, cmd: CommandAPDU) -> None:
        challenge, self._challenge = self._challenge, None
        if challenge is None:
            raise CardReply(SW.CONDITIONS)
        if len(cmd.data) != 4:
            raise CardReply(SW.WRONG_LENGTH)
        iv = challenge[:4] + bytes(4)
        header = bytes((cmd.cla, cmd.ins, cmd.p1, cmd.p2, len(cmd.data)))
        expected = mac_alg3(self.card_keys().maintenance, pad_method2(header), iv)[:4]
        if not secrets.compare_digest(expected, cmd.data):
            raise CardReply(SW.MAC_ERROR)

    def _application_block(self, cmd: CommandAPDU) -> bytes:
        if cmd.cla != 0x84 or cmd.p2 not in (0x00, 0x01):
            raise CardReply(SW.WRONG_P1P2)
        self._check_secure_mac(cmd)
        self.state.blocked = "permanent" if cmd.p2 == 0x01 else "temporary"
        self._selected = False
        self._commit()
        return b""

    def _application_unblock(self, cmd: CommandAPDU) -> bytes:
        if self.state.blocked != "temporary":
            raise CardReply(SW.CONDITIONS)
        self._check_secure_mac(cmd)
        self.state.blocked = ""
        self._commit()
        return b""

    # INTERNAL AUTHENTICATE (campus identity) ------------------------------------------
    def _internal_authenticate(self, cmd: CommandAPDU) -> bytes:
        if not self.state.campus_key or cmd.p2 != campus.KEY_INDEX:
            raise CardReply(SW.KEY_NOT_FOUND)
        if len(cmd.data) != campus.CHALLENGE_LEN:
            raise CardReply(SW.WRONG_LENGTH)
        return campus.auth_cryptogram(bytes.fromhex(self.state.campus_key), cmd.data)


_HANDLERS = {
    (0x00, IsoIns.SELECT): SoftEPurseCard._select,
    (0x00, IsoIns.READ_BINARY): SoftEPurseCard._read_binary,
    (0x00, IsoIns.READ_RECORD): SoftEPurseCard._read_record,
    (0x80, c.Ins.GET_BALANCE): SoftEPurseCard._get_balance,
    (0x80, c.Ins.INITIALIZE): SoftEPurseCard._initialize,
    (0x80, c.Ins.UPDATE_CAPP_DATA_CACHE): SoftEPurseCard._update_capp_cache,
    (0x80, c.Ins.DEBIT_FOR_PURCHASE): SoftEPurseCard._debit,
    (0x80, c.Ins.CREDIT_FOR_LOAD): SoftEPurseCard._credit,
    (0x80, c.Ins.GET_TRANSACTION_PROVE): SoftEPurseCard._prove,
    (0x00, IsoIns.VERIFY): SoftEPurseCard._verify,
    (0x00, IsoIns.GET_CHALLENGE): SoftEPurseCard._get_challenge,
    (0x80, c.Ins.APPLICATION_BLOCK): SoftEPurseCard._application_block,
    (0x80, c.Ins.APPLICATION_UNBLOCK): SoftEPurseCard._application_unblock,
    (0x00, IsoIns.INTERNAL_AUTHENTICATE): SoftEPurseCard._internal_authenticate,
}
