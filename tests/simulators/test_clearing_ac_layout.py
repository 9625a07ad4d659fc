"""Clearing reads an Electronic Cash TC's input by its issuer's AC layout (a setting per
EMV issuer BIN; the software card's by default): a card whose issuer orders the PDOL
differently clears under its own layout and is refused under the wrong one."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from simulators.clearing.ac_layouts import load_ec_layouts
from simulators.clearing.ledger import record_key
from simulators.clearing.verify import SOFTWARE_CARD, AcLayout, Rejected, TacVerifier
from simulators.emv_profiles import default_issuer, emv_card
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import TerminalConfig
from terminal.journal import SETTLED, Journal
from terminal.readers.sim import SimReader
from terminal.roles.onecard_pos import OneCardPos, PaymentRule
from terminal.roles.session import TerminalSession
from terminal.text import FileError
from tests.servers import ServerProcess, free_port

# TTQ, then the unpredictable number and date first: another issuer's order of the same data
SECOND = AcLayout(
    "date and UN first", bytes.fromhex("9F66049F37049A039F02069F03069F1A0295055F2A029C01")
)


def ec_sale(card, psam, clock, tmp_path) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """One real EC sale by the software card at the one-card POS, as the gateway sends it."""
    session = TerminalSession(SimReader(card), SimReader(psam), clock=clock)
    session.start()
    with Journal(tmp_path / "pos.db") as j:
        pos = OneCardPos(
            session, j, TerminalConfig(trust_test_keys=True), CaKeyStore.builtin(),
            PaymentRule.named("ec"),
        )  # fmt: skip
        row = pos.charge(1_200).ec_row
        assert row is not None and row.state == SETTLED
        return {**row.upload_record(), "kind": "ec_purchase", "operator_id": "corner-shop"}


def test_a_second_layout_clears_under_its_issuers_setting_only(psam, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    card = emv_card(1, ec_balance=5_000)
    card.app("emv").state.contactless_pdol = SECOND.pdol.hex()
    record = ec_sale(card, psam, clock, tmp_path)
    bin_ = record["pan"][:6]
    own = TacVerifier([], [default_issuer()], {bin_: SECOND})
    own.check(record)
    wrong = r"altered or forged|does not read as the software card layout"
    with pytest.raises(Rejected, match=wrong):
        TacVerifier([], [default_issuer()]).check(record)  # read as the software card's
    with pytest.raises(Rejected, match="amount differ"):
        own.check({**record, "amount": 120})


def test_the_software_card_layout_is_the_default(psam, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    record = ec_sale(emv_card(1, ec_balance=5_000), psam, clock, tmp_path)
    verifier = TacVerifier([], [default_issuer()])
    assert verifier.ac_layout(record["pan"]) is SOFTWARE_CARD
    verifier.check(record)
    with pytest.raises(Rejected, match=r"altered or forged|does not read as the date and UN"):
        TacVerifier([], [default_issuer()], {record["pan"][:6]: SECOND}).check(record)


def test_a_layout_that_leaves_the_amount_uncovered_is_refused() -> None:
    with pytest.raises(ValueError, match="must cover 9F02"):
        AcLayout("no amount", bytes.fromhex("9F66049F03069F1A0295055F2A029A039C019F3704"))
    with pytest.raises(ValueError, match="no record field states 9F21"):
        AcLayout("time", bytes.fromhex("9F66049F02069F21035F2A029A039F3704"))


def _layouts_file(path: Path, bin_: str) -> Path:
    path.write_text(
        f'[[layout]]\nbin = "{bin_}"\nname = "{SECOND.name}"\npdol = "{SECOND.pdol.hex()}"\n',
        encoding="utf-8",
    )
    return path


def test_clearing_serve_reads_each_bins_layout_from_its_file(psam, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    card = emv_card(1, ec_balance=5_000)
    card.app("emv").state.contactless_pdol = SECOND.pdol.hex()
    record = ec_sale(card, psam, clock, tmp_path)
    record["key"] = record_key(record)
    layouts = _layouts_file(tmp_path / "layouts.toml", record["pan"][:6])
    results = {}
    for name, extra in (("own", ["--ec-layouts", str(layouts)]), ("default", [])):
        db = tmp_path / f"{name}.db"
        args = ["clearing", "serve", "--db", str(db), *extra, "--port", str(free_port())]
        server = ServerProcess(args, int(args[-1]), tmp_path / f"{name}.log").start()
        try:
            body = {"gateway_id": "gw", "records": [record]}
            (results[name],) = httpx.post(f"{server.url}/v1/records", json=body).json()["results"]
            settled = httpx.get(f"{server.url}/v1/stats").json()["accepted"]
        finally:
            server.stop()
        results[name]["accepted"] = settled
    assert (results["own"]["status"], results["own"]["accepted"]) == ("accepted", 1), results
    assert (results["default"]["status"], results["default"]["accepted"]) == ("rejected", 0)
    assert (
        "software card layout" in results["default"]["reason"]
        or "forged" in (results["default"]["reason"])
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[[layout]]\nbin = "62"\nname = "x"\npdol = "9F6604"\n', ":2: layout.bin must be 4"),
        ('[[layout]]\nbin = "622202"\nname = "x"\npdol = "9F66049F0206"\n', ":4: AC layout x"),
        ('[[layout]]\nbin = "622202"\nname = "x"\npdol = "9G"\n', ":4: layout.pdol '9G'"),
        ('[[layout]]\nbin = "622202"\nname = "x"\n', ":1: layout 1 is missing 'pdol'"),
        ('[[layout]]\nbin = "622202"\nname = "x"\npdol = "9F66"\ncolour = 1\n', ":5: unknown"),
        ('[[layout]]\nbin = "622202"\nname = "x"\npdol = "9F6604"\nskip = -1\n', ":5: skip"),
    ],
)
def test_a_wrong_layouts_file_is_refused_at_its_line(tmp_path, text: str, said: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "layouts.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FileError, match=re.escape(f"{path}{said}")):
        load_ec_layouts(path)


def test_a_pan_never_has_two_layouts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _layouts_file(tmp_path / "layouts.toml", "622202")
    path.write_text(path.read_text() * 2, encoding="utf-8")
    with pytest.raises(FileError, match=r":6: BIN 622202 overlaps BIN 622202"):
        load_ec_layouts(path)
    wider = _layouts_file(tmp_path / "wider.toml", "6222").read_text()
    path.write_text(_layouts_file(path, "622202").read_text() + wider, encoding="utf-8")
    with pytest.raises(FileError, match=r":6: BIN 6222 overlaps BIN 622202"):
        load_ec_layouts(path)
    assert load_ec_layouts(_layouts_file(tmp_path / "one.toml", "622202")) == {"622202": SECOND}
