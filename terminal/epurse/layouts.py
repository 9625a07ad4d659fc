"""JT/T 978 / PBOC ED/EP byte layouts, declared once (reference §2.2, §5).

Used by the terminal to parse and by the software card to build.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import construct as cs

from terminal.layout import Amount, BcdDate, BcdDateTime, BcdTime

# -- the balance word -------------------------------------------------------------------
BALANCE_FLAG = 0x8000_0000
BALANCE_AMOUNT_MASK = 0x7FFF_FFFF


class BalanceWord(NamedTuple):
    """The 4-byte balance a card answers to GET BALANCE and INITIALIZE FOR PURCHASE: the
    amount is the low 31 bits; the top bit is a flag whose meaning is not public [U]
    (Metrodroid, NFSee and CoreExtendedNFC drop it too). It is kept, shown, and a debit
    is refused when it is set unless the terminal is configured to allow it."""

    amount: int
    flag: bool = False


class _BalanceWord(cs.Adapter):
    def _decode(self, obj: int, context: Any, path: str) -> BalanceWord:
        return BalanceWord(obj & BALANCE_AMOUNT_MASK, bool(obj & BALANCE_FLAG))

    def _encode(self, obj: BalanceWord | int, context: Any, path: str) -> int:
        word = obj if isinstance(obj, BalanceWord) else BalanceWord(obj)
        if not 0 <= word.amount <= BALANCE_AMOUNT_MASK:
            raise cs.ExplicitError(f"balance {word.amount} fen does not fit 31 bits")
        return word.amount | (BALANCE_FLAG if word.flag else 0)


BalanceAmount = _BalanceWord(Amount)

# -- files ------------------------------------------------------------------------------
PublicInfo = cs.Struct(  # SFI 0x15, 30 bytes; also FCI tag 9F0C
    "issuer_id" / cs.Bytes(8),
    "app_type" / cs.Int8ub,
    "app_version" / cs.Int8ub,
    "app_serial" / cs.Bytes(10),
    "start_date" / BcdDate,
    "expiry_date" / BcdDate,
    "issuer_fci" / cs.Bytes(2),
)

CardholderInfo = cs.Struct(  # SFI 0x16, 55 bytes
    "card_type" / cs.Int8ub,
    "staff_flag" / cs.Int8ub,
    "name" / cs.Bytes(20),  # GBK, padded with 00
    "id_number" / cs.Bytes(32),  # ASCII, padded with 00
    "id_type" / cs.Int8ub,
)

ManagementInfo = cs.Struct(  # SFI 0x17, 60 bytes
    "country_code" / cs.Bytes(4),
    "province_code" / cs.Bytes(2),
    "city_code" / cs.Bytes(2),
    "interop_type" / cs.Bytes(2),  # 0000 = not interoperable
    "card_kind" / cs.Int8ub,
    "reserved" / cs.Bytes(49),
)

TransactionRecord = cs.Struct(  # SFI 0x18, 23-byte cyclic records, #1 newest
    "atc" / cs.Int16ub,
    "overdraft_limit" / cs.Int24ub,
    "amount" / Amount,
    "txn_type" / cs.Int8ub,
    "terminal_id" / cs.Bytes(6),
    "date" / BcdDate,
    "time" / cs.Bytes(3),  # kept raw: empty records hold 000000
)

TripRecord = cs.Struct(  # SFI 0x1E, 48-byte cyclic process records
    "txn_type" / cs.Int8ub,
    "terminal_no" / cs.Bytes(8),
    "industry" / cs.Int8ub,
    "line" / cs.Bytes(2),
    "station" / cs.Bytes(2),
    "operator" / cs.Bytes(2),
    "rfu1" / cs.Bytes(1),
    "amount" / Amount,
    "balance" / Amount,
    "when" / BcdDateTime,
    "acquirer_city" / cs.Bytes(2),
    "acquirer_id" / cs.Bytes(8),
    "rfu2" / cs.Bytes(6),
)

# -- command data -----------------------------------------------------------------------
InitializeData = cs.Struct(  # INITIALIZE FOR LOAD / PURCHASE / CAPP PURCHASE, Lc 0B
    "key_index" / cs.Int8ub,
    "amount" / Amount,
    "terminal_id" / cs.Bytes(6),
)

DebitData = cs.Struct(  # DEBIT FOR (CAPP) PURCHASE, Lc 0F
    "terminal_seq" / cs.Int32ub,
    "date" / BcdDate,
    "time" / BcdTime,
    "mac1" / cs.Bytes(4),
)

CreditData = cs.Struct(  # CREDIT FOR LOAD, Lc 0B
    "date" / BcdDate,
    "time" / BcdTime,
    "mac2" / cs.Bytes(4),
)

# -- responses --------------------------------------------------------------------------
InitPurchaseResponse = cs.Struct(  # 15 bytes
    "balance" / BalanceAmount,
    "offline_atc" / cs.Int16ub,
    "overdraft_limit" / cs.Int24ub,
    "key_version" / cs.Int8ub,
    "algorithm" / cs.Int8ub,
    "card_random" / cs.Bytes(4),
)

InitLoadResponse = cs.Struct(  # 16 bytes
    "balance" / Amount,
    "online_atc" / cs.Int16ub,
    "key_version" / cs.Int8ub,
    "algorithm" / cs.Int8ub,
    "card_random" / cs.Bytes(4),
    "mac1" / cs.Bytes(4),
)

DebitResponse = cs.Struct("tac" / cs.Bytes(4), "mac2" / cs.Bytes(4))
ProveResponse = cs.Struct("mac" / cs.Bytes(4), "tac" / cs.Bytes(4))  # reverse of DEBIT
CreditResponse = cs.Struct("tac" / cs.Bytes(4))
Balance = cs.Struct("balance" / BalanceAmount)  # GET BALANCE

# -- MAC and TAC inputs (reference §3.2, §3.3) --------------------------------------------
PurchaseMac1Input = cs.Struct(
    "amount" / Amount,
    "txn_type" / cs.Int8ub,
    "terminal_id" / cs.Bytes(6),
    "date" / BcdDate,
    "time" / BcdTime,
)
PurchaseTacInput = cs.Struct(
    "amount" / Amount,
    "txn_type" / cs.Int8ub,
    "terminal_id" / cs.Bytes(6),
    "terminal_seq" / cs.Int32ub,
    "date" / BcdDate,
    "time" / BcdTime,
)
LoadMac1Input = cs.Struct(
    "balance" / Amount,
    "amount" / Amount,
    "txn_type" / cs.Int8ub,
    "terminal_id" / cs.Bytes(6),
)
LoadMac2Input = PurchaseMac1Input
LoadTacInput = cs.Struct(
    "new_balance" / Amount,
    "online_atc" / cs.Int16ub,
    "amount" / Amount,
    "txn_type" / cs.Int8ub,
    "terminal_id" / cs.Bytes(6),
    "date" / BcdDate,
    "time" / BcdTime,
)

# -- 0x1A variable-length records 27xx (reference §5.6; operator-defined after the header) ----
CAPP_RECORD_LEN = 128
CAPP_HEADER_LEN = 0x7D  # length of the rest after the 3-byte header

MetroRecord = cs.Struct(  # 2701, offsets after the Shanghai metro reader (SHJ)
    "tag" / cs.Const(b"\x27\x01"),
    "length" / cs.Const(bytes((CAPP_HEADER_LEN,))),
    "valid" / cs.Int8ub,
    "txn_flag" / cs.Int8ub,
    "lock_flag" / cs.Int8ub,
    "txn_serial" / cs.Bytes(8),
    "status" / cs.Int8ub,  # 00 none, 01 entered, 02 exited
    "entry_city" / cs.Bytes(2),
    "exit_city" / cs.Bytes(2),
    "entry_institution" / cs.Bytes(8),
    "exit_institution" / cs.Bytes(8),
    "entry_station" / cs.Bytes(8),
    "exit_station" / cs.Bytes(8),
    "entry_device" / cs.Bytes(8),
    "exit_device" / cs.Bytes(8),
    "entry_time" / BcdDateTime,
    "exit_time" / BcdDateTime,
    "max_fare" / Amount,
    "entry_line" / cs.Int8ub,
    "exit_line" / cs.Int8ub,
    "entry_amount" / Amount,
    "entry_balance" / Amount,
    "actual_amount" / Amount,
    "last_txn_time" / BcdDateTime,
    "last_rail_terminal" / cs.Bytes(4),
    "cumulative_amount" / cs.Int24ub,
    "cumulative_count" / cs.Int16ub,
    "transfer_info" / cs.Bytes(5),
    "entry_flag" / cs.Int8ub,
    "exit_flag" / cs.Int8ub,
    "in_out" / cs.Int8ub,  # 55 in, 66 out (SHJ)
    "rfu" / cs.Bytes(1),
    "crc32" / cs.Int32ub,  # over bytes 6..123 (Shanghai practice, configurable)
)

BusRecord = cs.Struct(  # 2702, offsets after the Handan bus AFC (HDN)
    "tag" / cs.Const(b"\x27\x02"),
    "length" / cs.Const(bytes((CAPP_HEADER_LEN,))),
    "valid" / cs.Int8ub,
    "txn_flag" / cs.Int8ub,  # 1 segmented/composite, 2 pre-authorised
    "lock_flag" / cs.Int8ub,
    "txn_serial" / cs.Bytes(8),
    "status" / cs.Int8ub,  # 00 init, 01 boarded, 02 alighted
    "board_city" / cs.Bytes(2),
    "board_institution" / cs.Bytes(8),
    "board_operator" / cs.Bytes(2),
    "board_line" / cs.Bytes(2),
    "board_stop" / cs.Int8ub,
    "board_vehicle" / cs.Bytes(8),
    "board_terminal" / cs.Bytes(8),
    "board_time" / BcdDateTime,
    "max_fare" / Amount,
    "direction" / cs.Int8ub,
    "alight_city" / cs.Bytes(2),
    "alight_institution" / cs.Bytes(8),
    "alight_operator" / cs.Bytes(2),
    "alight_line" / cs.Bytes(2),
    "alight_stop" / cs.Int8ub,
    "alight_vehicle" / cs.Bytes(8),
    "alight_terminal" / cs.Bytes(8),
    "alight_time" / BcdDateTime,
    "amount" / Amount,
    "mileage" / cs.Int16ub,
    "reserved" / cs.Bytes(26),
)

ModeRecord = cs.Struct(  # 27xx of taxi, bike, parking, coach: this project's layout [U]
    "tag" / cs.Const(b"\x27"),
    "record_no" / cs.Int8ub,  # xx: the industry code by default (taxi 04, bike 06, ...)
    "length" / cs.Const(bytes((CAPP_HEADER_LEN,))),
    "valid" / cs.Int8ub,
    "status" / cs.Int8ub,  # 00 none or closed, 01 open (renting, parked)
    "open_time" / BcdDateTime,
    "open_city" / cs.Bytes(2),
    "open_institution" / cs.Bytes(8),
    "open_place" / cs.Bytes(2),  # dock, car park or boarding station
    "open_device" / cs.Bytes(8),
    "close_time" / BcdDateTime,
    "close_place" / cs.Bytes(2),  # return dock, exit, or the coach's destination
    "close_device" / cs.Bytes(8),
    "held" / Amount,  # charged when opened (a bike deposit hold)
    "charged" / Amount,  # charged when closed (fare, fee)
    "vehicle" / cs.Bytes(8),  # ASCII, space padded: taxi plate, bike number
    "driver" / cs.Bytes(8),  # ASCII, space padded: taxi driver id
    "reserved" / cs.Bytes(55),
)

# -- the campus application (docs/campus.md): identity file and internal authentication key --
SFI_CAMPUS_IDENTITY = 0x19
CAMPUS_IDENTITY_LEN = 32
CAMPUS_KEY_INDEX = 1  # the internal authentication key's index in the card's key file

CampusIdentityFile = cs.Struct(  # SFI 0x19, 32 bytes, written by the issuance desk
    "person_no" / cs.Bytes(16),  # ASCII, padded with 00
    "category" / cs.Int8ub,
    "valid_from" / BcdDate,
    "valid_until" / BcdDate,
    "reserved" / cs.Bytes(7),
)
