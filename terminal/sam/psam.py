"""PSAM flows: start-up (terminal number, key index) and the purchase MAC steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from terminal.apdu.errors import MalformedResponse
from terminal.apdu.flow import Flow, sam
from terminal.apdu.iso import read_binary, select_aid, select_fid
from terminal.layout import parse
from terminal.sam import commands as c
from terminal.sam.layouts import Mac1Response, SamAppInfo


@dataclass(frozen=True, slots=True)
class SamInfo:
    """What the terminal learns from its PSAM at start-up."""

    terminal_id: bytes  # 6 bytes BCD, the 终端机编号 used in INIT, MAC and TAC inputs
    key_index: int  # purchase key index (KID) sent in INITIALIZE
    issuer_id: bytes
    start_date: date | None
    end_date: date | None

    @property
    def terminal_id_hex(self) -> str:
        return self.terminal_id.hex().upper()


@dataclass(frozen=True, slots=True)
class Mac1:
    terminal_seq: int
    mac1: bytes


def startup(app: int | bytes = c.FID_TRANSPORT_APP) -> Flow[SamInfo]:
    """Select MF, read the terminal number, select the transport application, read its info."""
    yield sam(select_fid(c.FID_MF))
    r = yield sam(read_binary(c.SFI_TERMINAL_ID, length=c.TERMINAL_ID_LEN))
    terminal_id = r.data
    if len(terminal_id) != c.TERMINAL_ID_LEN:
        raise MalformedResponse(
            f"PSAM terminal number is {len(terminal_id)} bytes, not 6", raw=terminal_id
        )
    yield sam(select_aid(app) if isinstance(app, bytes) else select_fid(app))
    r = yield sam(read_binary(c.SFI_APP_INFO, length=c.APP_INFO_LEN))
    info = parse(SamAppInfo, r.data, "PSAM application info (0x17)")
    return SamInfo(terminal_id, info.key_index, info.issuer_id, info.start_date, info.end_date)


def mac1(command_response_data: bytes) -> Mac1:
    m = parse(Mac1Response, command_response_data, "INIT SAM FOR PURCHASE response")
    return Mac1(m.terminal_seq, m.mac1)
