"""Modelled time of card exchanges on a real ISO/IEC 14443 Type A link at 106 kbit/s.

Air time (ISO/IEC 14443-2/-3/-4 facts): the carrier is fc = 13.56 MHz and one bit lasts
128/fc (9.44 us) at 106 kbit/s; a Type A standard frame is a start bit, 9 bits per byte
(8 data bits plus odd parity) and an end of frame (counted as one bit); each ISO-DEP
I-block adds a PCB byte and the two CRC_A bytes around the APDU. The card may answer no
sooner than the frame delay time FDT = 1172/fc (86.4 us) and the reader waits at least
that long again before its next frame (the minimum is used, to keep the model low).

Card processing (what a card needs between the last bit in and the first bit out) is
the uncertain part. Published measurements put a simple command at about 10 ms and
each DES operation of a Java Card applet at about 12 ms (NXP JCOP, measured at the
terminal: java-index.com forum thread "Is DES (128bits) of only 16bytes in 200
miliseconds too slow?", 2007), and whole contactless EMV taps of 5-8 APDUs at 215-740 ms
of pure transceive time, 315-325 ms on recent cards (wwopenfare.com, "IsoDep Transceive
Times"), i.e. tens of ms per APDU. Native-COS transport cards are faster than Java
Cards, so the model takes values at the low end, which makes "host share of card time"
a conservative (pessimistic) figure:

- SELECT, READ BINARY/RECORD, GET BALANCE: 5 ms (half the measured simple command);
- INITIALIZE FOR PURCHASE/LOAD: 15 ms (random number, one session-key derivation);
- DEBIT / CREDIT / UPDATE CAPP DATA CACHE: 30 ms (MAC check, MAC2 and TAC, and the
  atomic EEPROM update of balance, counter and log record);
- anything else: 5 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

FC_HZ = 13.56e6
BIT_S = 128 / FC_HZ  # one bit at 106 kbit/s
FDT_S = 1172 / FC_HZ  # minimum frame delay time, each direction
ISO_DEP_OVERHEAD = 3  # PCB + CRC_A (2)

PROCESSING_S = {
    0xA4: 0.005,  # SELECT
    0xB0: 0.005,  # READ BINARY
    0xB2: 0.005,  # READ RECORD
    0x5C: 0.005,  # GET BALANCE
    0x50: 0.015,  # INITIALIZE FOR PURCHASE / LOAD
    0x54: 0.030,  # DEBIT FOR (CAPP) PURCHASE
    0x52: 0.030,  # CREDIT FOR LOAD
    0xDC: 0.030,  # UPDATE CAPP DATA CACHE
}
DEFAULT_PROCESSING_S = 0.005


def frame_seconds(apdu_bytes: int) -> float:
    """One Type A ISO-DEP frame carrying ``apdu_bytes`` of APDU: start, 9 bits/byte, end."""
    return (2 + 9 * (apdu_bytes + ISO_DEP_OVERHEAD)) * BIT_S


@dataclass(frozen=True)
class ModelledExchange:
    ins: int
    air_s: float
    processing_s: float

    @property
    def total_s(self) -> float:
        return self.air_s + self.processing_s


def model_exchange(command: bytes, response: bytes) -> ModelledExchange:
    air = frame_seconds(len(command)) + frame_seconds(len(response)) + 2 * FDT_S
    ins = command[1] if len(command) > 1 else 0
    return ModelledExchange(ins, air, PROCESSING_S.get(ins, DEFAULT_PROCESSING_S))


def model_card_time(exchanges: list[tuple[bytes, bytes]]) -> dict[str, float]:
    """Air, processing and total seconds of the card's part of a transaction."""
    parts = [model_exchange(c, r) for c, r in exchanges]
    air = sum(p.air_s for p in parts)
    processing = sum(p.processing_s for p in parts)
    return {"air_s": air, "processing_s": processing, "total_s": air + processing}
