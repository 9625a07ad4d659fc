"""A blank software card: an FMCOS-style card OS that an issuance desk personalises.

It leaves the card factory holding only its MF, an 8-byte chip serial and a transport
key (the vendor's transport master diversified with the chip serial). The desk
authenticates with that key, creates the EP application and its files, loads the card
keys as cryptograms MACed under the transport key, writes 0x15/0x16/0x17 and the PIN,
and activates it. Activation checks that everything is there, builds an ``EPurseState``
and hands over to ``SoftEPurseCard``: from then on every APDU goes to that card (its
file is rewritten as an ordinary e-purse card file), so a personalised card behaves
exactly like any other software e-purse card. Until then SELECT MF reports the ISO
life-cycle byte, which tells the desk whether the card is blank or half-personalised,
and SELECT of the EP AID answers 6283 so terminals refuse a half-made card.

The command set is documented in docs/issuance.md.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.epurse_card import (
    CAPP_RECORD_LEN,
    CAPP_RECORDS,
    DEFAULT_ATR,
    LOG_SIZE,
    TRIP_LOG_SIZE,
    TRIP_RECORD_LEN,
    CardReply,
    EPurseState,
    SoftEPurseCard,
)
from simulators.statefile import SavedDevice, read_state
from terminal.apdu import tlv
from terminal.apdu.bcd import encode_pin
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MalformedApdu, MalformedResponse
from terminal.apdu.iso import IsoIns
from terminal.apdu.status import SW, wrong_le, wrong_pin
from terminal.campus import card as campus
from terminal.cos import commands as cc
from terminal.cos.layouts import (
    BinaryHeader,
    DfHeader,
    FileType,
    KeyFileHeader,
    KeyRecord,
    KeyType,
    LifeCycle,
    PinRecord,
    PurseHeader,
    RecordHeader,
)
from terminal.crypto.errors import CryptoError
from terminal.crypto.keys import Algorithm
from terminal.crypto.primitives import des_encrypt
from terminal.crypto.secure import command_mac, decrypt_data
from terminal.epurse import commands as ec
from terminal.epurse.commands import AID_TUNION_EP, FID_EP, PURSE_EP, Ins
from terminal.layout import parse

KIND = "fmcos-blank"
AUTH_TRIES = 15
TXN_RECORD_LEN = 23

# The EP file set the software card's e-purse engine implements (JT/T 978 geometry).
BINARY_FILES = {
    ec.SFI_PUBLIC_INFO: 30,
    ec.SFI_CARDHOLDER: 55,
    ec.SFI_MANAGEMENT: 60,
}
RECORD_FILES = {
    ec.SFI_TXN_LOG: (FileType.CYCLIC, LOG_SIZE, TXN_RECORD_LEN),
    ec.SFI_CAPP_VARIABLE: (FileType.LINEAR_FIXED, CAPP_RECORDS, CAPP_RECORD_LEN),
    ec.SFI_TRIP: (FileType.CYCLIC, TRIP_LOG_SIZE, TRIP_RECORD_LEN),
}
EP_KEYS = {
    KeyType.PURCHASE: "purchase",
    KeyType.LOAD: "load",
    KeyType.TAC: "tac",
    KeyType.MAINTENANCE: "maintenance",
}
# The campus application (docs/campus.md): optional, both parts or neither.
CAMPUS_KEY = "campus"
CAMPUS_FILE_SIZE = campus.IDENTITY_LEN
# Instructions of the e-purse application: refused (6985) until the card is activated.
_EP_INS = set(Ins) | {IsoIns.VERIFY, IsoIns.READ_BINARY, IsoIns.READ_RECORD}


def _hex(b: bytes) -> str:
    return b.hex().upper()


def _fid(value: int) -> str:
    return f"{value:04X}"


@dataclass
class BlankCardState:
    """The card's EEPROM before activation (JSON-serialisable: bytes as hex)."""

    chip_id: str  # 8 bytes
    transport_key: str  # 16 bytes, the MF's external-authentication and line-protection key
    life_cycle: int = LifeCycle.CREATION
    auth_tries: int = AUTH_TRIES
    adf: dict[str, Any] = field(default_factory=dict)  # {"aid": hex} once created
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # FID hex -> header (+data)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # "purchase"... -> key record
    pin: str = ""
    atr: str = _hex(DEFAULT_ATR)


class SoftBlankCard(SavedDevice):
    """The blank card. ``process`` takes a command APDU and returns the response bytes."""

    kind = KIND

    def __init__(self, state: BlankCardState, path: str | Path | None = None):
        self.state = state
        self.path = Path(path) if path is not None else None
        self.purse: SoftEPurseCard | None = None  # set on activation: every APDU goes there
        self._rng = secrets.token_bytes
        self.reset()

    @classmethod
    def manufacture(
        cls, chip_id: bytes, transport_key: bytes, path: str | Path | None = None
    ) -> SoftBlankCard:
        """A card as the vendor ships it: MF, chip serial, transport key, nothing else."""
        if len(chip_id) != 8 or len(transport_key) != 16:
            raise ValueError("chip id must be 8 bytes and the transport key 16 bytes")
        card = cls(BlankCardState(_hex(chip_id), _hex(transport_key)), path)
        card.save()
        return card

    # -- persistence --------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> SoftBlankCard:
        data = read_state(path, (KIND,), "blank software card")
        return cls(BlankCardState(**data["state"]), path)

    def save(self, path: str | Path | None = None) -> None:
        """Write the state atomically; once activated the file is an e-purse card file."""
        if self.purse is not None:
            self.purse.save(path)
            return
        super().save(path)

    # -- what tests and tools look at ------------------------------------------------------
    @property
    def chip_id(self) -> bytes:
        return bytes.fromhex(self.state.chip_id)

    @property
    def activated(self) -> bool:
        return self.purse is not None

    @property
    def life_cycle(self) -> LifeCycle:
        return LifeCycle.ACTIVATED if self.activated else LifeCycle(self.state.life_cycle)

    def reset(self) -> None:
        """Power-on reset: selection, authentication and challenge are volatile."""
        if self.purse is not None:
            self.purse.reset()
        self._in_adf = False
        self._authenticated = False
        self._challenge: bytes | None = None

    # -- APDU processing ----------------------------------------------------------------
    def process(self, apdu: bytes) -> bytes:
        if self.purse is not None:
            return self.purse.process(apdu)
        try:
            command = CommandAPDU.decode(apdu)
        except MalformedApdu:
            return SW.WRONG_LENGTH.to_bytes(2, "big")
        challenge, self._challenge = self._challenge, None
        try:
            data = self._dispatch(command, challenge)
        except CardReply as reply:
            return reply.data + reply.sw.to_bytes(2, "big")
        return data + SW.OK.to_bytes(2, "big")

    def _dispatch(self, cmd: CommandAPDU, challenge: bytes | None) -> bytes:
        ins = cmd.ins
        if ins == IsoIns.SELECT:
            return self._select(cmd)
        if ins == IsoIns.GET_CHALLENGE and cmd.cla == 0x00:
            return self._get_challenge(cmd)
        if ins == IsoIns.EXTERNAL_AUTHENTICATE and cmd.cla == 0x00:
            return self._external_authenticate(cmd, challenge)
        handlers = {
            cc.INS_CREATE_FILE: self._create_file,
            cc.INS_UPDATE_BINARY: self._update_binary,
            cc.INS_ERASE_DF: self._erase_df,
            cc.INS_ACTIVATE: self._activate,
        }
        if ins == cc.INS_WRITE_KEY:
            self._require_auth()
            return self._write_key(cmd, challenge)
        if ins in handlers:
            self._require_auth()
            return handlers[ins](cmd)
        if ins in _EP_INS:
            raise CardReply(SW.CONDITIONS)  # the application is not personalised yet
        raise CardReply(SW.INS_NOT_SUPPORTED)

    def _require_auth(self) -> None:
        if not self._authenticated:
            raise CardReply(SW.SECURITY_STATUS)

    # SELECT ------------------------------------------------------------------------------
    def _select(self, cmd: CommandAPDU) -> bytes:
        st = self.state
        aid = bytes.fromhex(st.adf["aid"]) if st.adf else None
        if cmd.p1 == 0x00 and cmd.data == cc.FID_MF.to_bytes(2, "big"):
            self._in_adf = False
            return tlv.build(
                0x62,
                [
                    tlv.build(0x83, cmd.data),
                    tlv.build(0x8A, bytes((st.life_cycle,))),
                    tlv.build(0x85, self.chip_id),
                ],
            ).encode()
        fci = tlv.build(0x6F, [tlv.build(0x84, aid)]).encode() if aid else b""
        if cmd.p1 == 0x00 and aid and cmd.data == FID_EP.to_bytes(2, "big"):
            self._in_adf = True
            return fci
        if cmd.p1 == 0x04 and aid and cmd.data and aid.startswith(cmd.data):
            self._in_adf = True
            raise CardReply(SW.SELECTED_FILE_INVALIDATED, fci)  # exists, not yet activated
        raise CardReply(SW.FILE_NOT_FOUND)

    # GET CHALLENGE / EXTERNAL AUTHENTICATE ---------------------------------------------
    def _get_challenge(self, cmd: CommandAPDU) -> bytes:
        n = cmd.le or 4
        if n not in (4, 8):
            raise CardReply(wrong_le(8))
        self._challenge = self._rng(n)
        return self._challenge

    def _external_authenticate(self, cmd: CommandAPDU, challenge: bytes | None) -> bytes:
        st = self.state
        if st.auth_tries == 0:
            raise CardReply(SW.PIN_BLOCKED)
        if challenge is None:
            raise CardReply(SW.CONDITIONS)
        if len(cmd.data) != 8:
            raise CardReply(SW.WRONG_LENGTH)
        block = challenge.ljust(8, b"\x00")
        expected = des_encrypt(bytes.fromhex(st.transport_key), block)
        if secrets.compare_digest(expected, cmd.data):
            self._authenticated = True
            if st.auth_tries != AUTH_TRIES:
                st.auth_tries = AUTH_TRIES
                self._commit()
            return b""
        self._authenticated = False
        st.auth_tries -= 1
        self._commit()
        raise CardReply(SW.PIN_BLOCKED if st.auth_tries == 0 else wrong_pin(st.auth_tries))

    # CREATE FILE ------------------------------------------------------------------------
    def _create_file(self, cmd: CommandAPDU) -> bytes:
        fid = (cmd.p1 << 8) | cmd.p2
        st = self.state
        if not self._in_adf:
            self._create_adf(fid, cmd.data)
        else:
            key = _fid(fid)
            if key in st.files:
                raise CardReply(SW.FILE_EXISTS)
            st.files[key] = self._file_spec(fid, cmd.data)
        st.life_cycle = LifeCycle.INITIALISATION
        self._commit()
        return b""

    def _create_adf(self, fid: int, data: bytes) -> None:
        header = _parse(DfHeader, data)
        if fid != FID_EP or header.name != AID_TUNION_EP:
            raise CardReply(SW.WRONG_DATA)  # this card holds the T-Union EP application only
        if self.state.adf:
            raise CardReply(SW.FILE_EXISTS)
        self.state.adf = {"aid": _hex(header.name)}

    @staticmethod
    def _file_spec(fid: int, data: bytes) -> dict[str, Any]:
        """Check a header against the EP file set and return what the card keeps of it."""
        if not data:
            raise CardReply(SW.WRONG_LENGTH)
        file_type = data[0]
        sfi = cc.sfi_of(fid)
        if fid == cc.FID_KEY_FILE and file_type == FileType.KEY:
            _parse(KeyFileHeader, data)
            return {"type": file_type}
        if fid == cc.FID_EP_PURSE and file_type == FileType.PURSE:
            h = _parse(PurseHeader, data)
            if h.purse != PURSE_EP or h.log_sfi != ec.SFI_TXN_LOG:
                raise CardReply(SW.WRONG_DATA)
            return {
                "type": file_type,
                "max_balance": h.max_balance,
                "overdraft_limit": h.overdraft_limit,
            }
        sizes = {**BINARY_FILES, campus.SFI_IDENTITY: CAMPUS_FILE_SIZE}
        if fid == sfi and file_type == FileType.BINARY and sfi in sizes:
            h = _parse(BinaryHeader, data)
            if h.size != sizes[sfi]:
                raise CardReply(SW.WRONG_DATA)
            return {"type": file_type, "size": h.size, "data": "", "written": False}
        if fid == sfi and sfi in RECORD_FILES:
            h = _parse(RecordHeader, data)
            if (h.file_type, h.records, h.record_length) != RECORD_FILES[sfi]:
                raise CardReply(SW.WRONG_DATA)
            return {"type": file_type, "records": h.records, "record_length": h.record_length}
        raise CardReply(SW.WRONG_DATA)  # not part of the JT/T 978 EP file set

    # WRITE KEY ------------------------------------------------------------------------------
    def _write_key(self, cmd: CommandAPDU, challenge: bytes | None) -> bytes:
        st = self.state
        if not self._in_adf or _fid(cc.FID_KEY_FILE) not in st.files:
            raise CardReply(SW.FILE_NOT_FOUND)
        if cmd.p1 != cc.P1_ADD_KEY:
            raise CardReply(SW.WRONG_P1P2)
        if cmd.cla == cc.CLA_PLAIN:
            return self._set_pin(cmd)
        if cmd.cla != cc.CLA_SECURE:
            raise CardReply(SW.CLA_NOT_SUPPORTED)
        if challenge is None:
            raise CardReply(SW.CONDITIONS)
        if len(cmd.data) <= cc.MAC_LEN:
            raise CardReply(SW.WRONG_LENGTH)
        key = bytes.fromhex(st.transport_key)
        body, mac = cmd.data[: -cc.MAC_LEN], cmd.data[-cc.MAC_LEN :]
        header = cc.write_key_header(cmd.p2, len(body))
        if not secrets.compare_digest(command_mac(key, header, body, challenge), mac):
            raise CardReply(SW.MAC_ERROR)
        try:
            clear = decrypt_data(key, body)
        except CryptoError:
            raise CardReply(SW.WRONG_DATA) from None
        record = _parse(KeyRecord, clear)
        name = {**EP_KEYS, KeyType.INTERNAL: CAMPUS_KEY}.get(record.key_type)
        if name is None or record.key_index != cmd.p2:
            raise CardReply(SW.WRONG_DATA)
        if record.algorithm not in (Algorithm.DES3, Algorithm.SM4):
            raise CardReply(SW.WRONG_DATA)
        st.keys[name] = {
            "index": record.key_index,
            "version": record.key_version,
            "algorithm": record.algorithm,
            "key": _hex(record.key),
        }
        self._commit()
        return b""

    def _set_pin(self, cmd: CommandAPDU) -> bytes:
        if cmd.p2 != 0x00 or not cmd.data or cmd.data[0] != KeyType.PIN:
            raise CardReply(SW.SECURITY_STATUS)  # keys travel only under line protection
        record = _parse(PinRecord, cmd.data)
        digits = record.pin.hex().upper().rstrip("F")
        if not (digits.isdigit() and 4 <= len(digits) <= 12):
            raise CardReply(SW.WRONG_DATA)
        try:
            well_formed = encode_pin(digits) == record.pin
        except ValueError:
            well_formed = False
        if not well_formed:
            raise CardReply(SW.WRONG_DATA)
        self.state.pin = digits
        self._commit()
        return b""

    # UPDATE BINARY --------------------------------------------------------------------------
    def _update_binary(self, cmd: CommandAPDU) -> bytes:
        if not self._in_adf:
            raise CardReply(SW.FILE_NOT_FOUND)
        if not cmd.p1 & 0x80:
            raise CardReply(SW.WRONG_P1P2)
        spec = self.state.files.get(_fid(cmd.p1 & 0x1F))
        if spec is None:
            raise CardReply(SW.FILE_NOT_FOUND)
        if spec["type"] != FileType.BINARY:
            raise CardReply(SW.CONDITIONS)
        content = bytearray(bytes.fromhex(spec["data"]) or bytes(spec["size"]))
        end = cmd.p2 + len(cmd.data)
        if not cmd.data or end > spec["size"]:
            raise CardReply(SW.WRONG_LENGTH)
        content[cmd.p2 : end] = cmd.data
        spec["data"] = _hex(bytes(content))
        spec["written"] = True
        self._commit()
        return b""

    # ERASE DF ---------------------------------------------------------------------------------
    def _erase_df(self, cmd: CommandAPDU) -> bytes:
        if self._in_adf:
            raise CardReply(SW.CONDITIONS)  # erase from the MF: everything below it goes
        st = self.state
        st.adf, st.files, st.keys, st.pin = {}, {}, {}, ""
        st.life_cycle = LifeCycle.CREATION
        self._commit()
        return b""

    # ACTIVATE (end of personalisation) ----------------------------------------------------
    def _activate(self, cmd: CommandAPDU) -> bytes:
        state = self._epurse_state()
        self.purse = SoftEPurseCard(state, self.path)
        self.purse.save()
        return b""

    def _epurse_state(self) -> EPurseState:
        """The e-purse the personalised files describe, or 6985 if anything is missing."""
        st = self.state
        files = st.files
        required = [cc.FID_KEY_FILE, cc.FID_EP_PURSE, *BINARY_FILES, *RECORD_FILES]
        complete = (
            bool(st.adf)
            and all(_fid(f) in files for f in required)
            and all(files[_fid(sfi)]["written"] for sfi in BINARY_FILES)
            and set(st.keys) - {CAMPUS_KEY} == set(EP_KEYS.values())
            and bool(st.pin)
        )
        identity = files.get(_fid(campus.SFI_IDENTITY))
        has_campus = CAMPUS_KEY in st.keys or identity is not None
        if has_campus and not (CAMPUS_KEY in st.keys and identity and identity["written"]):
            complete = False  # a campus card needs its key and its written identity file
        if not complete:
            raise CardReply(SW.CONDITIONS)
        keys = {name: k for name, k in st.keys.items() if name != CAMPUS_KEY}
        if len({(k["version"], k["algorithm"]) for k in keys.values()}) != 1:
            raise CardReply(SW.CONDITIONS)  # one key version and algorithm per card
        purse = files[_fid(cc.FID_EP_PURSE)]

        def binary(sfi: int) -> str:
            return str(files[_fid(sfi)]["data"])

        return EPurseState(
            public_info=binary(ec.SFI_PUBLIC_INFO),
            holder=binary(ec.SFI_CARDHOLDER),
            management=binary(ec.SFI_MANAGEMENT),
            keys={name: str(k["key"]) for name, k in keys.items()},
            key_index=int(keys["purchase"]["index"]),
            load_key_index=int(keys["load"]["index"]),
            key_version=int(keys["purchase"]["version"]),
            algorithm=int(keys["purchase"]["algorithm"]),
            overdraft_limit=int(purse["overdraft_limit"]),
            max_balance=int(purse["max_balance"]),
            pin=st.pin,
            atr=st.atr,
            campus_key=str(st.keys[CAMPUS_KEY]["key"]) if has_campus else "",
            campus_identity=str(identity["data"]) if identity else "",
        )


def _parse(layout: Any, data: bytes) -> Any:
    try:
        return parse(layout, data, "personalisation data")
    except MalformedResponse:
        raise CardReply(SW.WRONG_DATA) from None
