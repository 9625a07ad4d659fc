"""A software PBOC 3.0 debit application with Electronic Cash, contact and qPBOC.

Contact: FCI with the contact PDOL, GPO in format 1, records, INTERNAL AUTHENTICATE
(DDA), GENERATE AC (ARQC/TC/AAC, format 1), EXTERNAL AUTHENTICATE (ARPC method 1) and
the EC load script (PUT DATA 9F79 with a MAC). Contactless (qPBOC): GPO in format 2 that
makes the offline decision itself - TC and an EC debit when the balance, single limit
and currency allow and the terminal does not insist on going online, ARQC otherwise, AAC
when the terminal is offline-only - signed with fDDA.

Keys: the ICC RSA key and the AC/MAC card keys live in the state; they come from the
project's TEST PKI and TEST issuer master keys (simulators/emv_profiles.py). Records
are stored as personalised, so a test can tamper with one and watch ODA fail.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from simulators.emv_pki import RsaKey, sign_dynamic_data
from terminal.apdu import tlv
from terminal.apdu.bcd import bcd_int, to_bcd
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MalformedApdu
from terminal.apdu.iso import IsoIns
from terminal.apdu.status import SW
from terminal.crypto.emv import (
    application_cryptogram,
    arpc_method1,
    pboc_session_key,
    script_mac,
)
from terminal.emv.certificates import FORMAT_SDAD
from terminal.emv.commands import CryptogramType, EmvIns
from terminal.emv.config import (
    TTQ_ODA_FOR_ONLINE,
    TTQ_OFFLINE_ONLY,
    TTQ_ONLINE_CRYPTOGRAM_REQUIRED,
    TTQ_QPBOC,
    has_bit,
)
from terminal.emv.dol import build_dol_data, dol_length, split_dol_data
from terminal.emv.ec import EC_LOAD_LENGTH, ec_load_mac_input
from terminal.emv.fci import LogEntry
from terminal.emv.oda import fdda_signed_input
from terminal.emv.selection import CONTACT, CONTACTLESS
from terminal.emv.tags import Tag

CONTACT_PDOL = bytes.fromhex("9F7A019F02065F2A02")
CONTACTLESS_PDOL = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")
CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F21039F4E14")
CDOL2 = bytes.fromhex("8A029F02069F03069F1A0295055F2A029A039C019F3704")
DDOL = bytes.fromhex("9F3704")
LOG_FORMAT = bytes.fromhex("9A039F21039F02069F03069F1A025F2A029F4E149C019F3602")
LOG_SFI = 0x0B
LOG_SIZE = 10
AC_INPUT_LENGTH = 29  # 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37, the head of CDOL1 and the PDOL
AIP = bytes.fromhex("7C00")
AFL = bytes.fromhex("080101001001010118010300")
CTQ = bytes.fromhex("3000")
ARC_APPROVED = (b"00", b"10", b"11")

# CVR byte 2 (after the length byte 03): AC type of the 2nd (b8-b7) and 1st (b6-b5) GENERATE AC
_CVR_FIRST = {CryptogramType.AAC: 0x80, CryptogramType.TC: 0x90, CryptogramType.ARQC: 0xA0}
_CVR_SECOND = {CryptogramType.AAC: 0x00, CryptogramType.TC: 0x40}


class CardReply(Exception):
    """Internal: stop processing and answer with this status word."""

    def __init__(self, sw: int, data: bytes = b""):
        super().__init__(f"{sw:04X}")
        self.sw = sw
        self.data = data


@dataclass
class EmvCardState:
    """Everything the application keeps in EEPROM (hex for bytes, so it serialises)."""

    aid: str
    label: str
    preferred_name: str
    pan: str
    psn: str
    records: dict[str, str]  # "sfi:record" -> record bytes, as personalised
    icc_key: dict[str, str]
    card_keys: dict[str, str]  # "ac", "mac", "enc": 16-byte card (UDK) keys
    ec_balance: int = 0
    ec_balance_limit: int = 100_000
    ec_single_limit: int = 50_000
    ec_reset_threshold: int = 1_000
    currency: str = "0156"
    expiry: str = "351231"  # YYMMDD (5F24), repeated here for the qPBOC decision
    atc: int = 0
    last_online_atc: int = 0
    pin_tries: int = 3
    log: list[str] = field(default_factory=list)  # newest first
    fdda_format: int = FORMAT_SDAD
    blocked: bool = False
    directory_priority: int = 1
    keeps_log: bool = True  # False: a card without a transaction log (no 9F4D, nothing logged)
    # the qPBOC PDOL: the TTQ (4 bytes), then the AC input's objects in the issuer's order
    contactless_pdol: str = CONTACTLESS_PDOL.hex().upper()


@dataclass
class _Session:
    """Volatile state between GPO / GENERATE AC / EXTERNAL AUTHENTICATE / scripts."""

    contact_gpo: bool = False
    arqc: bytes = b""
    arqc_atc: int = 0
    first_ac: CryptogramType | None = None
    issuer_authenticated: bool = False
    completed: bool = False


class EmvApplication:
    """The PBOC debit + EC application (one of the applications of a software card)."""

    kind = "emv"

    def __init__(self, state: EmvCardState, *, rng: Callable[[int], bytes] = secrets.token_bytes):
        self.state = state
        self.interface = CONTACTLESS
        self._rng = rng
        self._selected = False
        self._session = _Session()
        self._icc = RsaKey.from_json(state.icc_key)

    # -- identity ---------------------------------------------------------------------------
    @property
    def df_name(self) -> bytes:
        return bytes.fromhex(self.state.aid)

    @property
    def ec_balance(self) -> int:
        return self.state.ec_balance

    def directory_entry(self, interface: str) -> tlv.Tlv:
        return tlv.build(
            Tag.APPLICATION_TEMPLATE,
            [
                tlv.build(Tag.AID, self.df_name),
                tlv.build(Tag.APPLICATION_LABEL, self.state.label.encode("ascii")),
                tlv.build(Tag.PRIORITY, bytes((self.state.directory_priority,))),
            ],
        )

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "state": asdict(self.state)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmvApplication:
        return cls(EmvCardState(**data["state"]))

    def deselect(self) -> None:
        self._selected = False
        self._session = _Session()

    def record(self, sfi: int, number: int) -> bytes:
        return bytes.fromhex(self.state.records[f"{sfi}:{number}"])

    def set_record(self, sfi: int, number: int, raw: bytes) -> None:
        """Overwrite a personalised record (tests use it to tamper with signed data)."""
        self.state.records[f"{sfi}:{number}"] = raw.hex().upper()

    # -- APDU processing -----------------------------------------------------------------
    def process(self, apdu: bytes) -> bytes:
        try:
            cmd = CommandAPDU.decode(apdu)
        except MalformedApdu:
            return SW.WRONG_LENGTH.to_bytes(2, "big")
        try:
            data = self._dispatch(cmd)
        except CardReply as reply:
            return reply.data + reply.sw.to_bytes(2, "big")
        except ValueError:  # non-BCD amounts, malformed TLV in the data field
            return SW.WRONG_DATA.to_bytes(2, "big")
        return data + SW.OK.to_bytes(2, "big")

    def _dispatch(self, cmd: CommandAPDU) -> bytes:
        handler = _HANDLERS.get((cmd.cla, cmd.ins))
        if handler is None:
            if cmd.ins in {ins for _, ins in _HANDLERS}:
                raise CardReply(SW.CLA_NOT_SUPPORTED)
            raise CardReply(SW.INS_NOT_SUPPORTED)
        if handler is not EmvApplication._select and not self._selected:
            raise CardReply(SW.CONDITIONS)
        return handler(self, cmd)

    def _pdol(self) -> bytes:
        if self.interface == CONTACTLESS:
            return bytes.fromhex(self.state.contactless_pdol)
        return CONTACT_PDOL

    # SELECT ---------------------------------------------------------------------------------
    def fci(self) -> bytes:
        st = self.state
        pdol = self._pdol()
        return tlv.build(
            Tag.FCI,
            [
                tlv.build(Tag.DF_NAME, self.df_name),
                tlv.build(
                    Tag.FCI_PROPRIETARY,
                    [
                        tlv.build(Tag.APPLICATION_LABEL, st.label.encode("ascii")),
                        tlv.build(Tag.PRIORITY, bytes((st.directory_priority,))),
                        tlv.build(Tag.PDOL, pdol),
                        tlv.build(Tag.LANGUAGE, b"zhen"),
                        tlv.build(Tag.ISSUER_CODE_TABLE, b"\x01"),
                        tlv.build(Tag.PREFERRED_NAME, st.preferred_name.encode("ascii")),
                        *(
                            [
                                tlv.build(
                                    Tag.FCI_ISSUER_DISCRETIONARY,
                                    [tlv.build(Tag.LOG_ENTRY, bytes((LOG_SFI, LOG_SIZE)))],
                                )
                            ]
                            if st.keeps_log
                            else []
                        ),
                    ],
                ),
            ],
        ).encode()

    def _select(self, cmd: CommandAPDU) -> bytes:
        self.deselect()
        if cmd.p1 != 0x04 or not cmd.data or not self.df_name.startswith(cmd.data):
            raise CardReply(SW.FILE_NOT_FOUND)
        if cmd.p2 & 0x03 == 0x02:
            raise CardReply(SW.FILE_NOT_FOUND)  # one occurrence only
        if self.state.blocked:
            raise CardReply(SW.SELECTED_FILE_INVALIDATED, self.fci())
        self._selected = True
        return self.fci()

    # READ RECORD ------------------------------------------------------------------------
    def _read_record(self, cmd: CommandAPDU) -> bytes:
        sfi, mode = cmd.p2 >> 3, cmd.p2 & 0x07
        if mode != 0x04:
            raise CardReply(SW.WRONG_P1P2)
        if sfi == LOG_SFI:
            if not 1 <= cmd.p1 <= len(self.state.log):
                raise CardReply(SW.RECORD_NOT_FOUND)
            return bytes.fromhex(self.state.log[cmd.p1 - 1])
        key = f"{sfi}:{cmd.p1}"
        if key not in self.state.records:
            if any(k.startswith(f"{sfi}:") for k in self.state.records):
                raise CardReply(SW.RECORD_NOT_FOUND)
            raise CardReply(SW.FILE_NOT_FOUND)
        return bytes.fromhex(self.state.records[key])

    # GET DATA -------------------------------------------------------------------------------
    def _get_data(self, cmd: CommandAPDU) -> bytes:
        tag = (cmd.p1 << 8) | cmd.p2
        st = self.state
        values: dict[int, bytes] = {
            Tag.EC_BALANCE: to_bcd(st.ec_balance, 6),
            Tag.EC_BALANCE_LIMIT: to_bcd(st.ec_balance_limit, 6),
            Tag.EC_SINGLE_LIMIT: to_bcd(st.ec_single_limit, 6),
            Tag.EC_RESET_THRESHOLD: to_bcd(st.ec_reset_threshold, 6),
            Tag.APP_CURRENCY: bytes.fromhex(st.currency),
            Tag.ATC: st.atc.to_bytes(2, "big"),
            Tag.LAST_ONLINE_ATC: st.last_online_atc.to_bytes(2, "big"),
            Tag.PIN_TRY_COUNTER: bytes((st.pin_tries,)),
            Tag.LOG_FORMAT: LOG_FORMAT,
        }
        if tag not in values:
            raise CardReply(SW.FILE_NOT_FOUND)
        return tlv.build(tag, values[tag]).encode()

    # GPO ------------------------------------------------------------------------------------
    def _gpo(self, cmd: CommandAPDU) -> bytes:
        self._session = _Session()
        if self.state.blocked:
            raise CardReply(SW.CONDITIONS)
        try:
            template = tlv.parse_one(cmd.data, Tag.COMMAND_TEMPLATE)
        except ValueError:
            raise CardReply(SW.WRONG_DATA) from None
        pdol = self._pdol()
        if len(template.value) != dol_length(pdol):
            raise CardReply(SW.WRONG_LENGTH)
        if self.interface == CONTACT:
            self._session.contact_gpo = True
            return tlv.build(Tag.RESPONSE_FORMAT_1, AIP + AFL).encode()
        return self._qpboc(split_dol_data(pdol, template.value), template.value)

    def _qpboc(self, t: dict[int, bytes], pdol_data: bytes) -> bytes:
        st = self.state
        ttq = t[Tag.TTQ]
        if not has_bit(ttq, TTQ_QPBOC):
            raise CardReply(SW.CONDITIONS)  # only qPBOC on this interface
        amount = bcd_int(t[Tag.AMOUNT])
        today = t[Tag.DATE].hex()
        offline_ok = (
            not has_bit(ttq, TTQ_ONLINE_CRYPTOGRAM_REQUIRED)
            and t[Tag.CURRENCY].hex() == st.currency
            and amount <= st.ec_balance
            and amount <= st.ec_single_limit
            and today <= st.expiry
        )
        if offline_ok:
            kind = CryptogramType.TC
        elif has_bit(ttq, TTQ_OFFLINE_ONLY):
            kind = CryptogramType.AAC
        else:
            kind = CryptogramType.ARQC
        st.atc = (st.atc + 1) & 0xFFFF
        atc = st.atc.to_bytes(2, "big")
        iad = bytes((0x07, 0x01, 0x01, 0x03, _CVR_FIRST[kind], 0x00, 0x00, 0x01))
        ac = self._cryptogram(pdol_data[4 : 4 + AC_INPUT_LENGTH], atc, iad)
        if kind == CryptogramType.TC:
            st.ec_balance -= amount
            self._append_log(t, atc)
        card_auth = b"\x01" + self._rng(4) + CTQ
        objects = [
            tlv.build(Tag.AIP, AIP),
            tlv.build(Tag.AFL, AFL),
            tlv.build(Tag.ATC, atc),
            tlv.build(Tag.CID, bytes((int(kind),))),
            tlv.build(Tag.CRYPTOGRAM, ac),
            tlv.build(Tag.IAD, iad),
            tlv.build(Tag.CARD_AUTH_DATA, card_auth),
            tlv.build(Tag.CTQ, CTQ),
            tlv.build(Tag.AVAILABLE_OFFLINE_AMOUNT, to_bcd(st.ec_balance, 6)),
        ]
        if kind == CryptogramType.TC or (
            kind == CryptogramType.ARQC and has_bit(ttq, TTQ_ODA_FOR_ONLINE)
        ):
            card_data = {Tag.CARD_AUTH_DATA: card_auth}
            signed = fdda_signed_input(card_data, t)
            sdad = sign_dynamic_data(self._icc, b"\x02" + atc, signed, st.fdda_format)
            objects.append(tlv.build(Tag.SDAD, sdad))
        return tlv.build(Tag.RESPONSE_FORMAT_2, objects).encode()

    def _append_log(self, t: dict[int, bytes], atc: bytes) -> None:
        if not self.state.keeps_log:
            return
        record = build_dol_data(LOG_FORMAT, t, {Tag.ATC: atc})
        self.state.log.insert(0, record.hex().upper())
        del self.state.log[LOG_SIZE:]

    def _cryptogram(self, ac_input: bytes, atc: bytes, iad: bytes) -> bytes:
        key = pboc_session_key(
            bytes.fromhex(self.state.card_keys["ac"]), int.from_bytes(atc, "big")
        )
        cvr = iad[3:7]
        return application_cryptogram(key, ac_input + AIP + atc + cvr)

    # INTERNAL AUTHENTICATE ----------------------------------------------------------------
    def _internal_authenticate(self, cmd: CommandAPDU) -> bytes:
        if len(cmd.data) != dol_length(DDOL):
            raise CardReply(SW.WRONG_LENGTH)
        idn = self._rng(8)
        sdad = sign_dynamic_data(self._icc, b"\x08" + idn, cmd.data, FORMAT_SDAD)
        return tlv.build(Tag.RESPONSE_FORMAT_1, sdad).encode()

    # GENERATE AC -------------------------------------------------------------------------------
    def _generate_ac(self, cmd: CommandAPDU) -> bytes:
        s, st = self._session, self.state
        if not s.contact_gpo or s.completed:
            raise CardReply(SW.CONDITIONS)
        requested = CryptogramType(cmd.p1 & 0xC0) if cmd.p1 & 0xC0 != 0xC0 else None
        if requested is None:
            raise CardReply(SW.WRONG_P1P2)
        if s.first_ac is None:
            if len(cmd.data) != dol_length(CDOL1):
                raise CardReply(SW.WRONG_LENGTH)
            kind = CryptogramType.AAC if requested == CryptogramType.AAC else CryptogramType.ARQC
            st.atc = (st.atc + 1) & 0xFFFF
            atc = st.atc.to_bytes(2, "big")
            iad = bytes((0x07, 0x01, 0x01, 0x03, _CVR_FIRST[kind], 0x00, 0x00, 0x01))
            ac = self._cryptogram(cmd.data[:AC_INPUT_LENGTH], atc, iad)
            s.first_ac = kind
            if kind == CryptogramType.ARQC:
                s.arqc, s.arqc_atc = ac, st.atc
            else:
                s.completed = True
            return tlv.build(Tag.RESPONSE_FORMAT_1, bytes((int(kind),)) + atc + ac + iad).encode()
        if len(cmd.data) != dol_length(CDOL2):
            raise CardReply(SW.WRONG_LENGTH)
        arc = cmd.data[:2]
        approve = requested == CryptogramType.TC and arc in ARC_APPROVED and s.issuer_authenticated
        kind = CryptogramType.TC if approve else CryptogramType.AAC
        if approve:
            st.last_online_atc = st.atc
        atc = st.atc.to_bytes(2, "big")
        cvr2 = _CVR_SECOND[kind] | (_CVR_FIRST[CryptogramType.ARQC] & 0x30)
        iad = bytes((0x07, 0x01, 0x01, 0x03, cvr2, 0x00, 0x00, 0x01))
        ac = self._cryptogram(cmd.data[2 : 2 + AC_INPUT_LENGTH], atc, iad)
        s.completed = True
        return tlv.build(Tag.RESPONSE_FORMAT_1, bytes((int(kind),)) + atc + ac + iad).encode()

    # EXTERNAL AUTHENTICATE ---------------------------------------------------------------
    def _external_authenticate(self, cmd: CommandAPDU) -> bytes:
        s = self._session
        if not s.arqc or s.completed:
            raise CardReply(SW.CONDITIONS)
        if len(cmd.data) != 10:
            raise CardReply(SW.WRONG_LENGTH)
        key = pboc_session_key(bytes.fromhex(self.state.card_keys["ac"]), s.arqc_atc)
        expected = arpc_method1(key, s.arqc, cmd.data[8:10])
        if not secrets.compare_digest(expected, cmd.data[:8]):
            raise CardReply(0x6300)
        s.issuer_authenticated = True
        return b""

    # PUT DATA 9F79 (EC load script) ------------------------------------------------------
    def _put_data(self, cmd: CommandAPDU) -> bytes:
        s, st = self._session, self.state
        if (cmd.p1 << 8 | cmd.p2) != Tag.EC_BALANCE:
            raise CardReply(SW.WRONG_P1P2)
        if not s.arqc:
            raise CardReply(SW.CONDITIONS)
        if len(cmd.data) != EC_LOAD_LENGTH:
            raise CardReply(SW.WRONG_LENGTH)
        new_balance = bcd_int(cmd.data[:6])
        key = pboc_session_key(bytes.fromhex(st.card_keys["mac"]), s.arqc_atc)
        mac_input = ec_load_mac_input(s.arqc_atc.to_bytes(2, "big"), s.arqc, new_balance)
        if not secrets.compare_digest(script_mac(key, mac_input), cmd.data[6:]):
            raise CardReply(SW.SECURITY_STATUS)
        if new_balance > st.ec_balance_limit:
            raise CardReply(SW.WRONG_DATA)
        st.ec_balance = new_balance
        return b""

    @property
    def log_entry(self) -> LogEntry:
        return LogEntry(LOG_SFI, LOG_SIZE)


_HANDLERS = {
    (0x00, IsoIns.SELECT): EmvApplication._select,
    (0x00, IsoIns.READ_RECORD): EmvApplication._read_record,
    (0x80, EmvIns.GET_DATA): EmvApplication._get_data,
    (0x80, EmvIns.GET_PROCESSING_OPTIONS): EmvApplication._gpo,
    (0x00, IsoIns.INTERNAL_AUTHENTICATE): EmvApplication._internal_authenticate,
    (0x80, EmvIns.GENERATE_AC): EmvApplication._generate_ac,
    (0x00, IsoIns.EXTERNAL_AUTHENTICATE): EmvApplication._external_authenticate,
    (0x04, EmvIns.PUT_DATA): EmvApplication._put_data,
}
