"""E-purse transaction flows, sans-I/O: each yields card/SAM steps and returns a result.

Purchases and loads are split at the point where the outside world must act: the
journal records a ``PendingPurchase`` before DEBIT is sent; the host authorises a
``LoadRequest`` before CREDIT is sent. The one-call ``purchase``/``load`` flows compose
the halves with an injected hook or host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from terminal.apdu import iso, tlv
from terminal.apdu.channel import check
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import (
    CardError,
    FileNotFound,
    MalformedResponse,
    RecordNotFound,
    TransportError,
    YikatongError,
)
from terminal.apdu.flow import Flow, card, sam
from terminal.apdu.frozen import quick_init
from terminal.apdu.response import ResponseAPDU
from terminal.apdu.status import SW
from terminal.epurse import commands as c
from terminal.epurse.host import LoadHost
from terminal.epurse.layouts import (
    Balance,
    BalanceWord,
    CardholderInfo,
    CreditResponse,
    DebitResponse,
    InitLoadResponse,
    InitPurchaseResponse,
    ManagementInfo,
    PublicInfo,
)
from terminal.epurse.model import (
    CappEntry,
    Cardholder,
    CardInfo,
    CardSnapshot,
    LoadAuthorization,
    LoadRequest,
    LoadResult,
    LogEntry,
    Management,
    PendingPurchase,
    PurchaseResult,
    TripEntry,
)
from terminal.layout import parse
from terminal.sam import commands as samc
from terminal.sam.psam import SamInfo, mac1

TAG_FCI = 0x6F
TAG_FCI_PROPRIETARY = 0xA5
TAG_PUBLIC_INFO = 0x9F0C
TAG_DF_NAME = 0x84
TAG_LABEL = 0x50
FCI_TAGS = frozenset((TAG_PUBLIC_INFO, TAG_DF_NAME, TAG_LABEL))  # what a tap reads of the FCI
LOG_RECORDS = 10
TRIP_RECORDS = 10  # 0x1E is cyclic; cards keep up to 10 (reference §5.6)
CAPP_RECORDS = 16  # 0x1A records 27xx: the known ones are 2701..2708; read until 6A83


def select(aid: bytes = c.AID_TUNION_EP, *, fid: int | None = None) -> Flow[CardInfo]:
    """Select the EP application (by AID, or by FID for legacy cards) and read file 0x15.

    The 0x15 image comes from FCI tag 9F0C when the card sends it, else from READ BINARY.
    """
    return (yield from select_application(aid, fid=fid)).info


@quick_init
@dataclass(frozen=True, slots=True)
class Selected:
    """The selected EP: file 0x15, and the DF name (84) and label (50) of its FCI if sent."""

    info: CardInfo
    df_name: bytes | None
    label: str


def select_application(aid: bytes = c.AID_TUNION_EP, *, fid: int | None = None) -> Flow[Selected]:
    """``select`` that also keeps what the FCI says the application is."""
    r = yield card(iso.select_fid(fid) if fid is not None else iso.select_aid(aid))
    public = df_name = None
    label = ""
    if r.data:
        fci = tlv.first_values(r.data, FCI_TAGS)
        public = fci.get(TAG_PUBLIC_INFO)
        name = fci.get(TAG_DF_NAME)
        df_name = name if name is not None and 5 <= len(name) <= 16 else None
        text = fci.get(TAG_LABEL)
        if text is not None:
            label = text.decode("ascii", errors="replace").strip()
    if public is None:
        command, r = yield from read_file(c.SFI_PUBLIC_INFO, PublicInfo.sizeof())
        check(r, command)
        public = r.data
    return Selected(CardInfo.parse(public), df_name, label)


class BalanceFlagSet(YikatongError):
    """The card's balance word has its top bit set, whose meaning is not public: the
    terminal does not debit such a card unless configured to (``allow_balance_flag``)."""

    def __init__(self, word: BalanceWord, source: str):
        super().__init__(
            f"the card's balance word has its top bit set ({source}): its meaning is not "
            "public, so this terminal does not debit the card; refer it to the service desk"
        )
        self.word = word


def check_balance_word(word: BalanceWord, source: str, *, allow_flag: bool = False) -> int:
    """The amount of a balance word a terminal may debit from; BalanceFlagSet when the flag
    is set and not explicitly allowed."""
    if word.flag and not allow_flag:
        raise BalanceFlagSet(word, source)
    return word.amount


def read_balance_word(purse: int = c.PURSE_EP) -> Flow[BalanceWord]:
    """GET BALANCE: the amount (low 31 bits) and the flag (top bit), both kept."""
    r = yield card(c.get_balance(purse))
    word: BalanceWord = parse(Balance, r.data, "GET BALANCE response").balance
    return word


def read_balance(purse: int = c.PURSE_EP) -> Flow[int]:
    """The balance in fen (the low 31 bits of the word; the flag is left to display)."""
    return (yield from read_balance_word(purse)).amount


def read_log(sfi: int = c.SFI_TXN_LOG, records: int = LOG_RECORDS) -> Flow[list[LogEntry]]:
    """Read the cyclic transaction log, newest first, until the card says 6A83 (or 6A82)."""
    entries: list[LogEntry] = []
    for number in range(1, records + 1):
        try:
            r = yield card(iso.read_record(sfi, number))
        except (RecordNotFound, FileNotFound):
            break
        entry = LogEntry.parse(r.data)
        if entry is None:
            break
        entries.append(entry)
    return entries


T = TypeVar("T")

# the end of a record file: no such record (6A83) or no such file (6A82)
END_OF_RECORDS = (SW.RECORD_NOT_FOUND, SW.FILE_NOT_FOUND)


@dataclass(frozen=True, slots=True)
class Records(Generic[T]):
    """Records read one by one: what was read, and why reading stopped.

    ``error`` is set only when the first record could not be read for a reason other than
    the file's end; ``end`` says why a log with records in it stopped early."""

    items: list[T]
    end: str = ""
    error: str = ""
    absent: bool = False  # the card has no such file (6A82 on the first record)


def _describe(exc: YikatongError) -> str:
    return f"{type(exc).__name__}: {exc}"


def read_records(
    sfi: int, limit: int, parse_record: Callable[[int, bytes], T | None]
) -> Flow[Records[T]]:
    """READ RECORD 1..``limit`` of ``sfi`` (Le 00: the card's own length), each on its own.

    6A83/6A82 ends the file cleanly; so does an empty record (``parse_record`` gives None).
    Any other failure after at least one record also ends it, with the reason in ``end``;
    a failure on the first record is the file's ``error``. Records already read are kept.
    """
    items: list[T] = []
    for number in range(1, limit + 1):
        try:
            command = iso.read_record(sfi, number)
            r = yield card(command, check=False)
            if r.sw in END_OF_RECORDS:
                return Records(items, absent=not items and r.sw == SW.FILE_NOT_FOUND)
            check(r, command)
            item = parse_record(number, r.data)
        except TransportError:
            raise
        except YikatongError as exc:
            if items:
                return Records(items, end=f"record {number}: {_describe(exc)}")
            return Records(items, error=f"record {number}: {_describe(exc)}")
        if item is None:
            break
        items.append(item)
    return Records(items)


def read_file(sfi: int, spec_length: int) -> Flow[tuple[CommandAPDU, ResponseAPDU]]:
    """READ BINARY with Le 00, so the card answers with its file's own length; a card that
    refuses Le 00 (6700) is asked again for the specification's length."""
    command = iso.read_binary(sfi)
    r = yield card(command, check=False)
    if r.sw == SW.WRONG_LENGTH:
        command = iso.read_binary(sfi, length=spec_length)
        r = yield card(command, check=False)
    return command, r


def _optional_file(
    sfi: int,
    parse_file: Callable[[bytes], T],
    errors: dict[str, str],
    item: str,
    spec_length: int,
) -> Flow[T | None]:
    """READ BINARY of an optional file (``read_file``); its parsed fields, or None with the
    reason in ``errors[item]`` (absent files, 6A82, say nothing)."""
    try:
        command, r = yield from read_file(sfi, spec_length)
        if r.sw == SW.FILE_NOT_FOUND:
            return None
        check(r, command)
        return parse_file(r.data)
    except TransportError:
        raise
    except YikatongError as exc:
        errors[item] = _describe(exc)
        return None


def _second_purse(errors: dict[str, str]) -> Flow[BalanceWord | None]:
    """GET BALANCE P1 01: the second purse when the card answers 9000 (most refuse: None)."""
    command = c.get_balance(c.PURSE_EP, p1=c.SECOND_PURSE_P1)
    r = yield card(command, check=False)
    if not r.ok:
        return None
    try:
        word: BalanceWord = parse(Balance, r.data, "GET BALANCE (second purse) response").balance
    except YikatongError as exc:
        errors["second_purse"] = _describe(exc)
        return None
    return word


def read_card(
    aid: bytes = c.AID_TUNION_EP,
    *,
    holder: bool = True,
    full: bool = False,
    fid: int | None = None,
    label: str = "T-Union EP",
    found_by: str = "",
) -> Flow[CardSnapshot]:
    """Select, then gather balance, log, and (when present) holder and management files.

    ``full`` is the reader's view (``ykt read``): every item is read on its own, a failure
    is kept in ``errors`` next to the item and the rest is still read (the balance too may
    be missing then), and the trip (0x1E) and composite (0x1A) records are read as well.
    Without it (kiosk, issuance) an unreadable balance or log is an error. The snapshot
    names the application by its FCI's DF name and label, else by ``aid`` and ``label``.
    """
    selected = yield from select_application(aid, fid=fid)
    info = selected.info
    ident = {
        "aid": selected.df_name or aid,
        "label": selected.label or label,
        "found_by": found_by,
    }
    errors: dict[str, str] = {}
    holder_info = management = None
    if holder:
        holder_info = yield from _optional_file(
            c.SFI_CARDHOLDER, Cardholder.parse, errors, "holder", CardholderInfo.sizeof()
        )
        management = yield from _optional_file(
            c.SFI_MANAGEMENT, Management.parse, errors, "management", ManagementInfo.sizeof()
        )
    if not full:
        word = yield from read_balance_word()
        log = yield from read_log()
        return CardSnapshot(
            info, word.amount, log, holder_info, management, word.flag, errors=errors, **ident
        )
    balance: int | None = None
    flag = False
    try:
        word = yield from read_balance_word()
        balance, flag = word.amount, word.flag
    except TransportError:
        raise
    except YikatongError as exc:
        errors["balance"] = _describe(exc)
    second = yield from _second_purse(errors)
    log = yield from read_records(c.SFI_TXN_LOG, LOG_RECORDS, lambda n, raw: LogEntry.parse(raw))
    trips = yield from read_records(c.SFI_TRIP, TRIP_RECORDS, lambda n, raw: TripEntry.parse(raw))
    capp = yield from read_records(c.SFI_CAPP_VARIABLE, CAPP_RECORDS, CappEntry)
    for name, records in (("log", log), ("trips", trips), ("capp", capp)):
        if records.error:
            errors[name] = records.error
    return CardSnapshot(
        info,
        balance,
        log.items,
        holder_info,
        management,
        flag,
        errors=errors,
        log_end=log.end,
        trips=None if trips.absent or trips.error else trips.items,
        capp=None if capp.absent or capp.error else [e for e in capp.items if e.used],
        second_purse=None if second is None else second.amount,
        second_purse_flag=False if second is None else second.flag,
        **ident,
    )


@dataclass(frozen=True, slots=True)
class CacheUpdate:
    """One UPDATE CAPP DATA CACHE command of a composite purchase."""

    p1: int
    p2: int
    record: bytes

    @classmethod
    def trip(cls, record: bytes) -> CacheUpdate:
        """Append a 48-byte process record to the cyclic file 0x1E (80 DC 00 F0)."""
        return cls(0x00, c.SFI_TRIP << 3, record)

    @classmethod
    def capp(cls, record: bytes, *, p1_from_record: bool = True) -> CacheUpdate:
        """Replace a 0x1A 27xx record (80 DC xx D0); P1 = xx unless the card wants 00."""
        return cls(record[1] if p1_from_record else 0x00, c.SFI_CAPP_VARIABLE << 3, record)


def prepare_purchase(
    info: CardInfo,
    sam_info: SamInfo,
    amount: int,
    when: datetime,
    *,
    capp: bool = False,
    issuer_factor: bool = True,
    cache_updates: Callable[[int], list[CacheUpdate]] | None = None,
    updates_before_mac1: bool = False,
    allow_balance_flag: bool = False,
) -> Flow[PendingPurchase]:
    """INITIALIZE FOR (CAPP) PURCHASE on the card, MAC1 from the PSAM, and for a composite
    purchase the UPDATE CAPP DATA CACHE commands.

    ``cache_updates`` gets the balance before the debit (from INITIALIZE) and returns the
    records to write; they are sent after MAC1 (QSC/HDN/SHJ practice) or, with
    ``updates_before_mac1``, before it (LUA). ``issuer_factor`` sends the 8-byte issuer id as
    the PSAM's second diversification factor (JT/T 978, Lc 0x24); off for one-level schemes.
    A balance word with its top bit set stops the flow before MAC1 (BalanceFlagSet) unless
    ``allow_balance_flag``; nothing has been debited or journaled then.
    """
    if amount < 0:
        raise ValueError("amount must be a non-negative number of fen")
    if cache_updates is not None and not capp:
        raise ValueError("cache updates belong to a composite (CAPP) purchase")
    r = yield card(
        c.initialize_for_purchase(sam_info.key_index, amount, sam_info.terminal_id, capp=capp)
    )
    init = parse(InitPurchaseResponse, r.data, "INITIALIZE FOR PURCHASE response")
    balance = check_balance_word(
        init.balance, "INITIALIZE FOR PURCHASE", allow_flag=allow_balance_flag
    )
    updates = cache_updates(balance) if cache_updates is not None else []
    if updates_before_mac1:
        yield from _send_updates(updates)
    txn_type = c.TxnType.CAPP_PURCHASE if capp else c.TxnType.EP_PURCHASE
    factors = [info.issuer_id] if issuer_factor else []
    serial = info.serial
    r = yield sam(
        samc.init_sam_for_purchase(
            init.card_random,
            init.offline_atc,
            amount,
            txn_type,
            when,
            init.key_version,
            init.algorithm,
            serial,
            factors,
        )
    )
    m = mac1(r.data)
    if not updates_before_mac1:
        yield from _send_updates(updates)
    return PendingPurchase(
        issuer_id=info.issuer_id,
        card_serial=serial,
        terminal_id=sam_info.terminal_id,
        terminal_seq=m.terminal_seq,
        txn_type=txn_type,
        amount=amount,
        balance_before=balance,
        offline_atc=init.offline_atc,
        key_version=init.key_version,
        algorithm=init.algorithm,
        when=when,
        mac1=m.mac1,
    )


def _send_updates(updates: list[CacheUpdate]) -> Flow[None]:
    for u in updates:
        yield card(c.update_capp_data_cache(u.p1, u.p2, u.record))


def complete_purchase(
    pending: PendingPurchase, *, verify_mac2: bool = True
) -> Flow[PurchaseResult]:
    """DEBIT FOR PURCHASE on the card, then the PSAM checks the card's MAC2.

    Once the card has answered DEBIT it has debited, so nothing the PSAM does afterwards
    (MAC2 refused, any other status word, the PSAM's reader gone) loses the proof: the
    result says MAC2 was not verified, and the row is kept as suspect for clearing."""
    r = yield card(c.debit_for_purchase(pending.terminal_seq, pending.when, pending.mac1))
    debit = parse(DebitResponse, r.data, "DEBIT FOR PURCHASE response")
    verified = False
    if verify_mac2:
        try:
            yield sam(samc.credit_sam_for_purchase(debit.mac2))
            verified = True
        except (CardError, TransportError):
            verified = False
    return PurchaseResult(pending, debit.tac, debit.mac2, verified)


def purchase(
    info: CardInfo,
    sam_info: SamInfo,
    amount: int,
    when: datetime,
    *,
    capp: bool = False,
    on_intent: Callable[[PendingPurchase], None] | None = None,
    allow_balance_flag: bool = False,
) -> Flow[PurchaseResult]:
    """A whole simple (or CAPP) purchase; ``on_intent`` runs between MAC1 and DEBIT."""
    pending = yield from prepare_purchase(
        info, sam_info, amount, when, capp=capp, allow_balance_flag=allow_balance_flag
    )
    if on_intent is not None:
        on_intent(pending)
    return (yield from complete_purchase(pending))


def prepare_load(
    info: CardInfo,
    terminal_id: bytes,
    amount: int,
    when: datetime,
    *,
    key_index: int = 1,
    pin: str | None = None,
) -> Flow[LoadRequest]:
    """Optional VERIFY PIN, then INITIALIZE FOR LOAD; returns what the host must check."""
    if amount <= 0:
        raise ValueError("a load amount must be a positive number of fen")
    if pin is not None:
        yield card(iso.verify_pin(pin))
    r = yield card(c.initialize_for_load(key_index, amount, terminal_id))
    init = parse(InitLoadResponse, r.data, "INITIALIZE FOR LOAD response")
    return LoadRequest(
        issuer_id=info.issuer_id,
        card_serial=info.serial,
        terminal_id=terminal_id,
        amount=amount,
        balance_before=init.balance,
        online_atc=init.online_atc,
        key_version=init.key_version,
        algorithm=init.algorithm,
        card_random=init.card_random,
        mac1=init.mac1,
        when=when,
    )


def complete_load(request: LoadRequest, authorization: LoadAuthorization) -> Flow[LoadResult]:
    """CREDIT FOR LOAD with the host's MAC2; the card answers with its TAC."""
    if len(authorization.mac2) != 4:
        raise MalformedResponse("host MAC2 must be 4 bytes", raw=authorization.mac2)
    r = yield card(c.credit_for_load(authorization.when, authorization.mac2))
    credit = parse(CreditResponse, r.data, "CREDIT FOR LOAD response")
    return LoadResult(request, authorization, credit.tac)


def load(
    info: CardInfo,
    terminal_id: bytes,
    amount: int,
    when: datetime,
    host: LoadHost,
    *,
    key_index: int = 1,
    pin: str | None = None,
) -> Flow[LoadResult]:
    """A whole online load against ``host`` (authorise, credit, confirm the TAC)."""
    request = yield from prepare_load(info, terminal_id, amount, when, key_index=key_index, pin=pin)
    authorization = host.authorize_load(request)
    result = yield from complete_load(request, authorization)
    host.confirm_load(request, authorization, result.tac)
    return result
