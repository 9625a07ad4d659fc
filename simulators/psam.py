"""A software PSAM: terminal number, transport application, MAC1/MAC2 and generic DES MAC.

It holds the purchase and maintenance master keys per key version and derives each
card's keys from the factors the terminal sends (card serial, then issuer id), exactly
as the card's issuer did. Its terminal transaction sequence number is persisted and
advances on every INIT SAM FOR PURCHASE, so no two purchases share one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from simulators import statefile as sf
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MacMismatch, MalformedApdu
from terminal.apdu.iso import IsoIns
from terminal.apdu.status import SW, wrong_le
from terminal.campus import card as campus
from terminal.crypto.keys import Algorithm, card_key, purchase_session_key
from terminal.crypto.mac import mac_alg3
from terminal.epurse import cryptograms
from terminal.layout import build
from terminal.sam import commands as c
from terminal.sam.layouts import Mac1Request, Mac1Response

DEFAULT_ATR = bytes.fromhex("3B6900FF4A545942505341324E30")
MAC1_MIN_LC = 0x1C

KEY_USAGE_MAINTENANCE = 0x45  # DES INIT usage for application block / unblock MACs


class SamReply(Exception):
    def __init__(self, sw: int):
        super().__init__(f"{sw:04X}")
        self.sw = sw


@dataclass
class PsamState:
    serial: str  # 10 bytes, MF 0x15
    terminal_id: str  # 6 bytes, MF 0x16
    app_info: str  # 25 bytes, transport application 0x17
    masters: dict[str, dict[str, str]]  # key version -> {"purchase", "maintenance"}
    terminal_seq: int = 1
    algorithm: int = Algorithm.DES3
    atr: str = DEFAULT_ATR.hex().upper()
    campus: dict[str, str] = field(default_factory=dict)  # key version -> campus master


def _check_masters(v: object) -> str | None:
    """Key version -> {"purchase", "maintenance"} issuer master keys, 16 bytes each."""
    if not isinstance(v, dict) or not v:
        return "must be an object of key versions"
    for version, keys in v.items():
        if not str(version).isdigit() or not isinstance(keys, dict):
            return f"key version {version!r} must be digits with an object of keys"
        if set(keys) != {"purchase", "maintenance"}:
            return f"key version {version} must hold exactly purchase and maintenance"
        problem = sf.hex_map(16)(keys)
        if problem:
            return f"key version {version}: {problem}"
    return None


PSAM_CHECKS: dict[str, sf.Check] = {
    "serial": sf.hex_string(10),
    "terminal_id": sf.hex_string(6),
    "app_info": sf.hex_string(25),
    "masters": _check_masters,
    "terminal_seq": sf.integer(0xFFFF_FFFF),
    "algorithm": sf.integer(0xFF),
    "atr": sf.hex_string(),
    "campus": sf.hex_map(16),
}


@dataclass
class _PurchaseSession:
    key: bytes
    amount: int


@dataclass
class _Volatile:
    in_app: bool = False
    purchase: _PurchaseSession | None = None
    cipher_key: bytes | None = None
    challenge: bytes | None = None  # the last GET CHALLENGE, used once by VERIFY CARD
    extra: dict[str, bytes] = field(default_factory=dict)


class SoftPsam(sf.SavedDevice):
    kind = "psam"

    def __init__(self, state: PsamState, path: str | Path | None = None):
        self.state = state
        self.path = Path(path) if path is not None else None
        self._v = _Volatile()

    @classmethod
    def load(cls, path: str | Path) -> SoftPsam:
        """The PSAM saved in ``path``; FileError (file, line, what) if it is not one."""
        doc = sf.read_document(path, ("psam",), "software PSAM")
        return cls(sf.state_of(doc, PsamState, PSAM_CHECKS), path)

    @property
    def terminal_id(self) -> bytes:
        return bytes.fromhex(self.state.terminal_id)

    def reset(self) -> None:
        self._v = _Volatile()

    def process(self, apdu: bytes) -> bytes:
        try:
            cmd = CommandAPDU.decode(apdu)
        except MalformedApdu:
            return SW.WRONG_LENGTH.to_bytes(2, "big")
        handler = _HANDLERS.get((cmd.cla, cmd.ins))
        if handler is None:
            return SW.INS_NOT_SUPPORTED.to_bytes(2, "big")
        try:
            return handler(self, cmd) + SW.OK.to_bytes(2, "big")
        except SamReply as reply:
            return reply.sw.to_bytes(2, "big")

    # file system --------------------------------------------------------------------------
    def _select(self, cmd: CommandAPDU) -> bytes:
        if cmd.p1 == 0x00 and cmd.data == c.FID_MF.to_bytes(2, "big"):
            self._v.in_app = False
            return b""
        if (cmd.p1 == 0x00 and cmd.data == c.FID_TRANSPORT_APP.to_bytes(2, "big")) or (
            cmd.p1 == 0x04 and cmd.data == c.AID_MOT_CPSAM
        ):
            self._v.in_app = True
            return b""
        raise SamReply(SW.FILE_NOT_FOUND)

    def _read_binary(self, cmd: CommandAPDU) -> bytes:
        sfi = cmd.p1 & 0x1F
        if self._v.in_app:
            files = {c.SFI_APP_INFO: self.state.app_info}
        else:
            files = {c.SFI_SAM_SERIAL: self.state.serial, c.SFI_TERMINAL_ID: self.state.terminal_id}
        if not cmd.p1 & 0x80 or sfi not in files:
            raise SamReply(SW.FILE_NOT_FOUND)
        content = bytes.fromhex(files[sfi])[cmd.p2 :]
        if cmd.le is not None and cmd.le != 256:
            if cmd.le > len(content):
                raise SamReply(wrong_le(len(content)))
            content = content[: cmd.le]
        return content

    # purchase -----------------------------------------------------------------------------
    def _masters(self, key_version: int) -> dict[str, str]:
        masters = self.state.masters.get(str(key_version))
        if masters is None:
            raise SamReply(SW.KEY_NOT_FOUND)
        return masters

    def _init_for_purchase(self, cmd: CommandAPDU) -> bytes:
        self._v.purchase = None
        if not self._v.in_app:
            raise SamReply(SW.CONDITIONS)
        if len(cmd.data) < MAC1_MIN_LC or (len(cmd.data) - MAC1_MIN_LC) % 8:
            raise SamReply(SW.WRONG_LENGTH)
        req = Mac1Request.parse(cmd.data)
        if req.algorithm != self.state.algorithm:
            raise SamReply(SW.WRONG_DATA)
        master = bytes.fromhex(self._masters(req.key_version)["purchase"])
        issuer = req.factors[0] if req.factors else None
        dpk = card_key(master, req.card_serial, issuer, req.algorithm)
        seq = self.state.terminal_seq
        self.state.terminal_seq = (seq + 1) & 0xFFFFFFFF
        self.save()
        session = purchase_session_key(dpk, req.card_random, req.offline_atc, seq, req.algorithm)
        mac1 = cryptograms.purchase_mac1(
            session,
            amount=req.amount,
            txn_type=req.txn_type,
            terminal_id=self.terminal_id,
            when=req.when,
        )
        self._v.purchase = _PurchaseSession(session, req.amount)
        return build(Mac1Response, terminal_seq=seq, mac1=mac1)

    def _credit_for_purchase(self, cmd: CommandAPDU) -> bytes:
        session, self._v.purchase = self._v.purchase, None
        if session is None:
            raise SamReply(SW.CONDITIONS)
        if len(cmd.data) != 4:
            raise SamReply(SW.WRONG_LENGTH)
        try:
            cryptograms.verify_purchase_mac2(session.key, cmd.data, amount=session.amount)
        except MacMismatch:
            raise SamReply(SW.MAC_ERROR) from None
        return b""

    # generic DES INIT + MAC (application block) --------------------------------------------
    def _init_for_descrypt(self, cmd: CommandAPDU) -> bytes:
        if cmd.p1 != KEY_USAGE_MAINTENANCE:
            raise SamReply(SW.KEY_NOT_FOUND)
        if len(cmd.data) not in (8, 16):
            raise SamReply(SW.WRONG_LENGTH)
        master = bytes.fromhex(self._masters(cmd.p2)["maintenance"])
        issuer = cmd.data[8:16] or None
        self._v.cipher_key = card_key(master, cmd.data[:8], issuer)
        return b""

    def _cipher_data(self, cmd: CommandAPDU) -> bytes:
        key = self._v.cipher_key
        if key is None:
            raise SamReply(SW.CONDITIONS)
        if cmd.p1 != 0x05:
            raise SamReply(SW.WRONG_P1P2)
        if len(cmd.data) < 16 or len(cmd.data) % 8:
            raise SamReply(SW.WRONG_LENGTH)
        iv, padded = cmd.data[:8], cmd.data[8:]
        return mac_alg3(key, padded, iv)[:4]

    # campus card authentication (docs/campus.md) ----------------------------------------
    def _get_challenge(self, cmd: CommandAPDU) -> bytes:
        if cmd.le != campus.CHALLENGE_LEN:
            raise SamReply(wrong_le(campus.CHALLENGE_LEN))
        self._v.challenge = secrets.token_bytes(campus.CHALLENGE_LEN)
        return self._v.challenge

    def _verify_card(self, cmd: CommandAPDU) -> bytes:
        """The card's answer to this SAM's last challenge, under the campus key derived for
        the serial and issuer given; the challenge is spent whatever the outcome."""
        challenge, self._v.challenge = self._v.challenge, None
        if challenge is None:
            raise SamReply(SW.CONDITIONS)
        master = self.state.campus.get(str(cmd.p2))
        if master is None:
            raise SamReply(SW.KEY_NOT_FOUND)
        if len(cmd.data) != 24:
            raise SamReply(SW.WRONG_LENGTH)
        serial, issuer, answer = cmd.data[:8], cmd.data[8:16], cmd.data[16:]
        key = card_key(bytes.fromhex(master), serial, issuer, self.state.algorithm)
        try:
            campus.verify_auth_cryptogram(key, challenge, answer)
        except MacMismatch:
            raise SamReply(SW.MAC_ERROR) from None
        return b""


_HANDLERS = {
    (0x00, IsoIns.SELECT): SoftPsam._select,
    (0x00, IsoIns.READ_BINARY): SoftPsam._read_binary,
    (0x80, c.SamIns.INIT_SAM_FOR_PURCHASE): SoftPsam._init_for_purchase,
    (0x80, c.SamIns.CREDIT_SAM_FOR_PURCHASE): SoftPsam._credit_for_purchase,
    (0x80, c.SamIns.INIT_FOR_DESCRYPT): SoftPsam._init_for_descrypt,
    (0x80, c.SamIns.CIPHER_DATA): SoftPsam._cipher_data,
    (0x00, IsoIns.GET_CHALLENGE): SoftPsam._get_challenge,
    (0x80, IsoIns.EXTERNAL_AUTHENTICATE): SoftPsam._verify_card,
}
