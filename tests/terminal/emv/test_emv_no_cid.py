"""qPBOC GPO answers without 9F27 (issue 12, item 6): the cryptogram type comes from the
CVR in the issuer application data, as contactless kernels take it, and says so."""

from __future__ import annotations

import pytest

from terminal.emv.commands import CryptogramType
from terminal.emv.config import AID_UNIONPAY_DEBIT, SupportedAid, Transaction
from terminal.emv.errors import MissingCardData
from terminal.emv.kernel import (
    CID_FROM_9F27,
    CID_FROM_CVR,
    Outcome,
    cid_from_iad,
    process_application,
    qpboc_cryptogram,
)
from terminal.emv.selection import Candidate, select_application
from terminal.readers.replay import ReplayReader
from tests.terminal.emv import traces
from tests.terminal.emv.helpers import drive, h

CANDIDATE = Candidate(AID_UNIONPAY_DEBIT, SupportedAid(AID_UNIONPAY_DEBIT))


def _purchase(name: str):  # type: ignore[no-untyped-def]
    from terminal.emv.ca_keys import CaKeyStore

    reader = ReplayReader(traces.DATA / name)
    fci = drive(select_application(CANDIDATE), reader)
    txn = Transaction(amount=1_234, when=traces.NOW)
    config = traces.terminal_config()
    return drive(
        process_application(CANDIDATE.aid, fci, config, CaKeyStore.builtin(), txn, now=traces.NOW),
        reader,
    )


def test_gpo_without_9f27_takes_the_type_from_the_cvr() -> None:
    app = _purchase("qpboc-no-cid.trace")
    assert app.cryptogram is not None
    assert app.cryptogram.kind == CryptogramType.TC and app.cryptogram.cid_from == CID_FROM_CVR
    assert app.outcome in (Outcome.APPROVED_OFFLINE, Outcome.ONLINE_REQUEST)


def test_gpo_with_9f27_still_uses_it() -> None:
    app = _purchase("qpboc-offline-purchase.trace")
    assert app.cryptogram is not None and app.cryptogram.cid_from == CID_FROM_9F27
    assert app.outcome == Outcome.APPROVED_OFFLINE


@pytest.mark.parametrize(
    ("iad", "kind"),
    [
        ("0701010390000001", CryptogramType.TC),
        ("07010103A0000001", CryptogramType.ARQC),
        ("0701010380000001", CryptogramType.AAC),
        ("07010103B0000001", None),  # 11: RFU
        ("1F4A", None),  # not the VIS/PBOC layout
        ("0701010290000001", None),  # CVR length is not 03
        ("", None),
    ],
)
def test_cvr_first_ac_bits(iad: str, kind: CryptogramType | None) -> None:
    assert cid_from_iad(bytes.fromhex(iad)) == (None if kind is None else int(kind))


def test_no_9f27_and_no_usable_cvr_is_refused_with_the_reason() -> None:
    objects = {0x9F26: bytes(8), 0x9F36: b"\x00\x01", 0x9F10: h("07010103B0000001")}
    with pytest.raises(MissingCardData, match=r"no 9F27 and its 9F10 .* states no cryptogram"):
        qpboc_cryptogram(objects)
    del objects[0x9F10]
    with pytest.raises(MissingCardData, match="no 9F27 and its 9F10 is absent"):
        qpboc_cryptogram(objects)
