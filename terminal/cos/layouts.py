"""Byte layouts of the personalisation command set, declared once (docs/issuance.md).

CREATE FILE headers start with the FMCOS file-type byte; what follows each type byte,
the key records carried inside WRITE KEY cryptograms and the PIN record are the
project's layouts. The software blank card parses them, the desk and the HSM build them.
"""

from __future__ import annotations

from enum import IntEnum

import construct as cs


class FileType(IntEnum):
    """First byte of a CREATE FILE header (FMCOS file-type codes)."""

    DF = 0x38
    BINARY = 0x28
    LINEAR_FIXED = 0x2A
    CYCLIC = 0x2E
    PURSE = 0x2F
    KEY = 0x3F


class KeyType(IntEnum):
    """Key-type byte of a key record. 39 and 3A are the FMCOS codes for the external
    authentication key and the PIN; the four EP codes are the project's assignment."""

    EXTERNAL_AUTH = 0x39
    PIN = 0x3A
    PURCHASE = 0x3E
    LOAD = 0x3F
    TAC = 0x34
    MAINTENANCE = 0x36
    INTERNAL = 0x30  # FMCOS internal key: the campus INTERNAL AUTHENTICATE key


class LifeCycle(IntEnum):
    """ISO/IEC 7816-4 life-cycle status byte (FCP tag 8A) as the blank card reports it."""

    CREATION = 0x01  # blank: only the MF and the transport key exist
    INITIALISATION = 0x03  # personalisation under way (incomplete)
    ACTIVATED = 0x05  # operational (never reported by the blank card: it hands over)


DfHeader = cs.Struct(  # CREATE FILE of an application DF
    "file_type" / cs.Const(bytes((FileType.DF,))),
    "name" / cs.GreedyBytes,  # the AID, 5..16 bytes
)

KeyFileHeader = cs.Struct(  # the key file of the application DF (keys are WRITE KEY'd into it)
    "file_type" / cs.Const(bytes((FileType.KEY,))),
)

BinaryHeader = cs.Struct(
    "file_type" / cs.Const(bytes((FileType.BINARY,))),
    "size" / cs.Int16ub,
)

RecordHeader = cs.Struct(  # cyclic (2E) or linear fixed (2A) record file
    "file_type" / cs.Int8ub,
    "records" / cs.Int8ub,
    "record_length" / cs.Int8ub,
)

PurseHeader = cs.Struct(  # the EP purse file; its balance always starts at 0
    "file_type" / cs.Const(bytes((FileType.PURSE,))),
    "purse" / cs.Int8ub,  # 02 EP
    "max_balance" / cs.Int32ub,
    "overdraft_limit" / cs.Int24ub,
    "log_sfi" / cs.Int8ub,
)

KeyRecord = cs.Struct(  # clear text inside a WRITE KEY cryptogram (never on the wire)
    "key_type" / cs.Int8ub,
    "key_index" / cs.Int8ub,  # the index terminals quote (INITIALIZE key index, PSAM KID)
    "key_version" / cs.Int8ub,
    "algorithm" / cs.Int8ub,
    "key" / cs.Bytes(16),
)

PinRecord = cs.Struct(  # SET PIN: written in clear after external authentication
    "key_type" / cs.Const(bytes((KeyType.PIN,))),
    "pin" / cs.GreedyBytes,  # packed BCD, F-padded (terminal.apdu.bcd.encode_pin)
)
