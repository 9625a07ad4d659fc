"""The replay traces in tests/data/emv: how each was made, and a way to make them again.

Two families:

* recorded from the software cards with the TracingReader (``record_all``), with the
  terminal data pinned (tests/data/emv/terminal.json: date, time, unpredictable number)
  so a replay sends exactly the recorded commands;
* built from published data: the UnionPay UICS test-card contact trace (binaryfoo/
  emv-bertlv, MIT) re-written in the trace format, and the emv-tools SDA and DDA
  certificate chains (emv-reference.md §2.3) framed as a card's records.

``python -m tests.terminal.emv.traces`` rewrites the files.
"""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from simulators.emv_issuer import SoftEmvIssuer
from simulators.emv_profiles import emv_card, resident_card, ssse_card
from simulators.multiapp_card import SoftIcc
from terminal.apdu import tlv
from terminal.apdu.channel import Channel
from terminal.apdu.flow import run
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import AID_UNIONPAY_DEBIT, SupportedAid, TerminalConfig, Transaction
from terminal.emv.kernel import ec_load, process_application
from terminal.emv.selection import CONTACT, CONTACTLESS, Candidate, select_application
from terminal.emv.tags import Tag
from terminal.readers.sim import SimReader
from terminal.readers.trace import TraceWriter
from terminal.readers.tracing import TracingReader
from terminal.roles.inspect import inspect_card
from tests.terminal.emv import emvtools as V

DATA = Path(__file__).resolve().parents[2] / "data" / "emv"
TERMINAL_FILE = DATA / "terminal.json"
NOW = datetime(2026, 11, 28, 8, 30, 15)
CANDIDATE = Candidate(AID_UNIONPAY_DEBIT, SupportedAid(AID_UNIONPAY_DEBIT))

h = bytes.fromhex


def terminal_config() -> TerminalConfig:
    return TerminalConfig.from_file(TERMINAL_FILE)


def _seeded(card: SoftIcc) -> SoftIcc:
    """Make the card's own random numbers repeatable, so regenerated files are stable."""
    counter = itertools.count(1)
    for app in card.apps:
        if app.kind == "emv":
            app._rng = lambda n: bytes([next(counter) & 0xFF]) * n  # type: ignore[attr-defined]
    return card


def _record(title: str, card: SoftIcc, action) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    writer = TraceWriter(out)
    writer.comment(title)
    writer.comment("recorded from a yikatong software card (TEST keys); replay with")
    writer.comment("tests/data/emv/terminal.json as terminal data")
    reader = TracingReader(SimReader(_seeded(card)), writer)
    reader.connect()
    action({"card": Channel(reader)})
    return out.getvalue()


def _purchase(amount: int, config: TerminalConfig):  # type: ignore[no-untyped-def]
    def act(channels) -> None:  # type: ignore[no-untyped-def]
        fci = run(select_application(CANDIDATE), channels)
        txn = Transaction(amount=amount, when=NOW)
        run(
            process_application(CANDIDATE.aid, fci, config, CaKeyStore.builtin(), txn, now=NOW),
            channels,
        )

    return act


def _read(config: TerminalConfig, interface: str):  # type: ignore[no-untyped-def]
    def act(channels) -> None:  # type: ignore[no-untyped-def]
        run(inspect_card(config, CaKeyStore.builtin(), interface=interface, now=NOW), channels)

    return act


def _top_up(amount: int, config: TerminalConfig):  # type: ignore[no-untyped-def]
    def act(channels) -> None:  # type: ignore[no-untyped-def]
        fci = run(select_application(CANDIDATE), channels)
        app = run(
            process_application(
                CANDIDATE.aid,
                fci,
                config,
                CaKeyStore.builtin(),
                Transaction(when=NOW),
                interface=CONTACT,
                now=NOW,
            ),
            channels,
        )
        run(ec_load(app, amount, SoftEmvIssuer(), config, now=NOW), channels)

    return act


def _tampered() -> SoftIcc:
    card = emv_card(1, ec_balance=10_000)
    emv = card.app("emv")
    emv.set_record(2, 1, emv.record(2, 1).replace(h("9F0D05D8"), h("9F0D05D9")))
    return card


def recorded() -> dict[str, str]:
    config = terminal_config()
    offline_only = replace(config, offline_only=True)
    return {
        "resident-contactless-read.trace": _record(
            "ykt read of a resident card (PBOC debit + EC + T-Union EP), contactless",
            resident_card(1, ec_balance=7_700, ep_balance=3_300),
            _read(config, CONTACTLESS),
        ),
        "ssse-contact-read.trace": _record(
            "ykt read of a social security card (SSSE + PBOC debit), contact",
            ssse_card(1),
            _read(config, CONTACT),
        ),
        "qpboc-offline-purchase.trace": _record(
            "qPBOC purchase of 12.34 approved offline from Electronic Cash (TC, fDDA)",
            emv_card(1, ec_balance=10_000),
            _purchase(1_234, config),
        ),
        "qpboc-offline-decline.trace": _record(
            "qPBOC purchase of 20.00 on an offline-only terminal, EC balance 10.00: AAC",
            emv_card(1, ec_balance=1_000),
            _purchase(2_000, offline_only),
        ),
        "qpboc-tampered-record.trace": _record(
            "qPBOC purchase on a card whose signed record was altered: fDDA fails",
            _tampered(),
            _purchase(100, config),
        ),
        "contact-ec-top-up.trace": _record(
            "contact EC top-up of 50.00 through the issuer script (DDA, ARQC, script, TC)",
            emv_card(1, ec_balance=1_000, interface=CONTACT),
            _top_up(5_000, config),
        ),
    }


# -- traces built from published data ---------------------------------------------------

UICS_SOURCE = (
    "UnionPay UICS certification test card, contact, 2015-03-16; from binaryfoo/emv-bertlv\n"
    "src/test/resources/cases/contact-upi-in.txt (MIT licence, (c) binaryfoo), re-written\n"
    "in the trace format. Replay with date 2015-03-16 and unpredictable number 7863AFC6."
)


def uics_trace(source_text: str) -> str:
    """Convert the alternating command/response lines of the published case file."""
    lines = [line.strip() for line in source_text.splitlines() if line.strip()]
    if len(lines) % 2:
        raise ValueError("the case file must alternate command and response lines")
    out = [f"# {line}" for line in UICS_SOURCE.splitlines()]
    out.append("ATR: 3B00")
    out += [f"{c} : {r}" for c, r in zip(lines[::2], lines[1::2], strict=True)]
    return "\n".join(out) + "\n"


def _fci(aid: bytes, pdol: bytes | None = None) -> bytes:
    prop = [tlv.build(Tag.APPLICATION_LABEL, b"TEST")]
    if pdol:
        prop.append(tlv.build(Tag.PDOL, pdol))
    return tlv.build(
        Tag.FCI, [tlv.build(Tag.DF_NAME, aid), tlv.build(Tag.FCI_PROPRIETARY, prop)]
    ).encode()


def _line(command: bytes, response: bytes) -> str:
    return f"{command.hex().upper()} : {(response + h('9000')).hex().upper()}"


def emvtools_trace(kind: str) -> str:
    """A contact card built around a published emv-tools chain (records frame the data)."""
    if kind == "sda":
        aid, aip = h("A0000000031010"), h("5C00")
        oda = V.SDA_STATIC_DATA[:-2]  # the signed records; the AIP is appended (9F4A = 82)
        card = V.sda_card()
        keys = [
            Tag.CA_KEY_INDEX,
            Tag.ISSUER_PK_CERT,
            Tag.ISSUER_PK_REMAINDER,
            Tag.ISSUER_PK_EXPONENT,
            Tag.SSAD,
        ]
        title = "emv-tools test/sda-test.c chain (Visa CA 01), framed as a contact card"
    else:
        aid, aip = h("A0000000041010"), h("3900")
        oda = V.DDA_STATIC_DATA[:-2]
        card = V.dda_card()
        keys = [
            Tag.CA_KEY_INDEX,
            Tag.ISSUER_PK_CERT,
            Tag.ISSUER_PK_REMAINDER,
            Tag.ISSUER_PK_EXPONENT,
            Tag.ICC_PK_CERT,
            Tag.ICC_PK_EXPONENT,
        ]
        title = "emv-tools test/dda-test.c chain (Mastercard CA 05), framed as a contact card"
    afl = h("10010201")  # SFI 2, records 1-2, record 1 is the ODA record
    rec1 = tlv.build(Tag.RECORD_TEMPLATE, oda).encode()
    tail = [tlv.build(t, card[t]) for t in keys]
    if kind == "sda":
        tail.append(tlv.build(Tag.SDA_TAG_LIST, b"\x82"))
    rec2 = tlv.build(Tag.RECORD_TEMPLATE, tail).encode()
    lines = [
        f"# {title}",
        "# (lumag/emv-tools, LGPL-2.1: certificate data only, quoted in emv-reference.md §2.3)",
        "ATR: 3B00",
        _line(h("00A404000E315041592E5359532E444446303100"), h("")).replace(" : 9000", " : 6A82"),
        _line(h("00A40400") + bytes((len(aid),)) + aid + b"\x00", _fci(aid)),
        _line(h("80A8000002830000"), tlv.build(Tag.RESPONSE_FORMAT_1, aip + afl).encode()),
        _line(h("00B2011400"), rec1),
        _line(h("00B2021400"), rec2),
    ]
    if kind == "dda":
        lines.append(
            _line(
                h("008800000400000000" + "00"),
                tlv.build(Tag.RESPONSE_FORMAT_1, V.DDA_SDAD).encode(),
            )
        )
    return "\n".join(lines) + "\n"


def emvtools_config(kind: str) -> TerminalConfig:
    aid = h("A0000000031010") if kind == "sda" else h("A0000000041010")
    day = "2009-01-01" if kind == "sda" else "2015-01-01"
    return TerminalConfig.from_json(
        {"date": day, "unpredictable_number": "00000000", "capabilities": "E0F8C0"}
    ).with_overrides(supported_aids=(SupportedAid(aid),))


def write_all() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name, text in recorded().items():
        (DATA / name).write_text(text, encoding="utf-8")
    for kind in ("sda", "dda"):
        (DATA / f"emvtools-{kind}.trace").write_text(emvtools_trace(kind), encoding="utf-8")


if __name__ == "__main__":
    if not TERMINAL_FILE.exists():
        TERMINAL_FILE.write_text(
            json.dumps(
                {
                    "date": "2026-11-28",
                    "time": "08:30:15",
                    "unpredictable_number": "11223344",
                    "trust_test_keys": True,
                },
                indent=2,
            )
            + "\n"
        )
    write_all()
