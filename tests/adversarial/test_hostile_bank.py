"""A hostile (or careless) agent-bank result file, and a kiosk reaching for a line the bank
pays: unsigned, wrongly signed, altered, replayed or mismatched result files are refused as
a whole with the reason and nothing changes; a line is paid by the bank or at a kiosk, never
both, and sent to the bank again only after the bank's own signed word that it failed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from gateway.subsidy.bank import Bank, BankKey, Banks
from terminal.epurse import flows
from terminal.epurse.host import LoadDeclined
from terminal.readers.sim import SimReader
from terminal.roles.kiosk_host import HttpSubsidyHost
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayRefused
from tests.gateway_fixtures import BANK_KEY, race_held, start_gateway
from tests.subsidy_kit import (
    KIOSK_A,
    admin,
    answer,
    bank_batch,
    bank_result,
    card_for,
    holder_row,
    import_roster,
    payment_file,
    post_result,
    roster,
    send_roster,
    sent_batch,
)


def unchanged(gw: Any) -> None:
    """Every bank line still sent, no result stored, no line event but the sending."""
    with gw.db.tx() as cur:
        cur.execute("SELECT state, COUNT(*) FROM subsidy_bank_lines GROUP BY state")
        assert dict(cur.fetchall()) == {"sent": 2}
        cur.execute("SELECT action, COUNT(*) FROM subsidy_line_events GROUP BY action")
        assert dict(cur.fetchall()) == {"bank_sent": 2}
    assert gw.count("subsidy_bank_results") == 0


def edit(body: bytes, old: str, new: str) -> bytes:
    text = body.decode()
    assert old in text
    return text.replace(old, new, 1).encode()


def test_result_files_that_do_not_match_the_batch_are_refused(gateway, centre):
    ref, text = sent_batch(gateway, centre, people=2)
    good = bank_result(text, key=None)  # each case below is signed by the bank: its mistakes
    z, li, wang = centre.records
    d1 = next(x for x in good.decode().splitlines() if x.startswith("D,1,"))
    d2 = next(x for x in good.decode().splitlines() if x.startswith("D,2,"))
    cases = [
        # a forged file for a batch never sent
        (edit(good, f"H,{ref}", "H,B20260101999999"), 404, "unknown_batch", "was ever sent"),
        # the amount raised (and the totals line with it)
        (
            edit(edit(good, ",1500000,", ",1600000,"), "T,2,1545000", "T,2,1645000"),
            409,
            "amount_mismatch",
            "says 1600000 fen; 1500000 fen was sent",
        ),
        # paid to another card
        (
            edit(good, f"D,1,{z.card_number}", f"D,1,{wang.card_number}"),
            409,
            "card_mismatch",
            f"names card {wang.card_number}; it was sent to {z.card_number}",
        ),
        # a line twice
        (
            edit(good, d2, d1).replace(b"T,2,1545000", b"T,2,3000000"),
            409,
            "duplicate_line",
            "appears twice in the file",
        ),
        # a reference the batch does not have
        (
            edit(
                good,
                f"D,2,{li.card_number},45000,{ref}-00002",
                f"D,3,{li.card_number},45000,{ref}-00003",
            ),
            409,
            "unknown_line",
            f"'{ref}-00003' is no line of batch {ref}",
        ),
        # the totals line does not add up
        (edit(good, "T,2,1545000", "T,2,1544999"), 422, "bad_result", "the totals line says"),
    ]
    for body, status, code, why in cases:
        r = post_result(gateway, BANK_KEY.signed(body))
        assert (r.status_code, r.json()["error"]) == (status, code), r.text
        assert why in r.json()["reason"], r.text
        unchanged(gateway)
    # the genuine file goes through once; the same file again is a replay
    assert post_result(gateway, BANK_KEY.signed(good)).status_code == 200
    r = post_result(gateway, BANK_KEY.signed(good))
    assert (r.status_code, r.json()["error"]) == (409, "replayed"), r.text
    # a re-signed copy with another bank serial still cannot settle a line twice
    r = post_result(gateway, BANK_KEY.signed(good.replace(b",BK", b",XK")))
    assert (r.status_code, r.json()["error"]) == (409, "already_settled"), r.text
    with gateway.db.tx() as cur:
        cur.execute("SELECT COUNT(*) FROM subsidy_line_events WHERE action = 'bank_paid'")
        assert cur.fetchone()[0] == 2
    assert gateway.count("subsidy_bank_results") == 1


def test_a_line_at_the_bank_is_never_paid_at_a_kiosk(gateway, centre, clock):
    _, text = sent_batch(gateway, centre, people=2)
    li = centre.records[1]
    report = admin(gateway, "GET", "/v1/admin/subsidies/report").json()
    line_id = next(x["line_id"] for x in report["lines"] if x["item"] == "H18")
    card = card_for(li, balance=0)
    session = TerminalSession(SimReader(card), clock=clock)
    session.card_reader.connect()
    info = session.run(flows.select())
    request = session.run(flows.prepare_load(info, bytes.fromhex(KIOSK_A), 45_000, clock()))
    host = HttpSubsidyHost(centre._client(KIOSK_A, "kiosk"), sleep=lambda s: None)
    for _ in ("at the bank", "paid by the bank"):
        with pytest.raises(LoadDeclined) as caught:
            host.paying([line_id], answer(1)).authorize_load(request)
        cause = caught.value.__cause__
        assert isinstance(cause, GatewayRefused)
        assert (cause.status, cause.code) == (409, "bank_channel")
        assert (
            "by the agent bank (batch B" in cause.reason and "never paid at a kiosk" in cause.reason
        )
        assert card.balance == 0 and gateway.count("loads") == 0
        post_result(gateway, bank_result(text))


def test_a_line_paid_at_a_kiosk_is_never_sent_to_the_bank(gateway, centre):
    li = centre.records[1]
    doc = import_roster(
        gateway,
        roster(f"{holder_row(li)},H18,45000,2026-10"),
    )
    send_roster(gateway, doc["roster"]["id"])
    card = card_for(li, balance=0)
    kiosk, _ = centre.kiosk(card=card)
    assert kiosk.pick_up(answer(1)).paid_fen == 45_000
    r = admin(gateway, "POST", "/v1/admin/subsidies/bank/batches", json={"actor": "finance"})
    assert (r.status_code, r.json()["error"]) == (409, "nothing_to_send"), r.text
    assert gateway.count("subsidy_bank_lines") == 0 and gateway.count("subsidy_bank_batches") == 0
    assert card.balance == 45_000


def refused(r: Any, code: str, why: str) -> None:
    assert (r.status_code, r.json()["error"]) == (403, code), r.text
    assert why in r.json()["reason"], r.text


def test_a_forged_result_file_cannot_free_a_line_to_be_paid_twice(gateway, centre):
    """Whoever can upload a result file (an office login, a stolen admin token) but holds
    no bank key marks a line the bank is paying "failed" so the office sends it again (the
    person is paid twice), or marks unpaid lines paid: each file is refused as a whole."""
    ref, text = sent_batch(gateway, centre, people=2)
    said_failed = bank_result(text, failed={1: "账户不存在"}, key=None)
    thief = BankKey("hmac-sm3", "line", bytes(16))
    genuine = bank_result(text)
    altered = edit(genuine, ",S,,BK00000001", ",F,账户不存在,BK00000001")
    forgeries = [
        # no signature at all: the line failed, or every line paid
        (said_failed, "unsigned", "carries no signature line"),
        (bank_result(text, key=None), "unsigned", "carries no signature line"),
        # signed with a key that is not the bank's
        (thief.signed(said_failed), "bad_signature", "MAC is not the agent bank's"),
        # the bank's own file with one line turned from paid to failed after signing
        (altered, "bad_signature", "changed after the bank signed it"),
        # the MAC line kept, a line appended after it
        (genuine + b"D,1,x,1,y,F,z,w\n", "unsigned", "carries no signature line"),
        # the genuine MAC copied onto the forged content
        (said_failed + genuine.splitlines(keepends=True)[-1], "bad_signature", "hmac-sm3 MAC"),
    ]
    for body, code, why in forgeries:
        refused(post_result(gateway, body), code, why)
        unchanged(gateway)
    # a MAC handed over apart does not stand in for the line this bank signs with
    r = post_result(gateway, said_failed, signature=BANK_KEY.sign(said_failed))
    refused(r, "unsigned", "signs inside the file")
    unchanged(gateway)
    # nothing failed, so nothing can be sent again or picked up
    r = admin(
        gateway,
        "POST",
        "/v1/admin/subsidies/bank/batches",
        json={"actor": "finance", "reissue_of": ref},
    )
    assert (r.status_code, r.json()["error"]) == (409, "nothing_to_send"), r.text
    assert gateway.count("subsidy_bank_batches") == 1 and gateway.count("subsidy_bank_lines") == 2
    # the bank's own answer is taken, and pays each line once
    r = post_result(gateway, genuine)
    assert (r.status_code, r.json()["paid"], r.json()["paid_fen"]) == (200, 2, 1_545_000), r.text
    with gateway.db.tx() as cur:
        cur.execute("SELECT state, COUNT(*) FROM subsidy_bank_lines GROUP BY state")
        assert dict(cur.fetchall()) == {"paid": 2}


def test_without_the_bank_key_no_result_file_is_taken(gateway, centre, clock):
    """A gateway whose operator configured no bank key cannot tell the bank's file from a
    forgery: it takes none, signed or not."""
    _, text = sent_batch(gateway, centre, people=2)
    keyless = start_gateway(gateway.db, clock, bank_key=None)
    try:
        for body in (bank_result(text), bank_result(text, {1: "账户不存在"}, key=None)):
            refused(post_result(keyless, body), "no_bank_key", "no agent bank key configured")
            unchanged(gateway)
    finally:
        keyless.server.stop()


def test_a_bank_that_signs_apart(gateway, centre, clock):
    """A bank configured to send its MAC apart (sidecar, HMAC-SHA256): a file without it,
    with another file's MAC or with a MAC of a wrong key is refused; its own MAC is taken."""
    _, text = sent_batch(gateway, centre, people=2)
    bank = BankKey("hmac-sha256", "sidecar", bytes(range(32)))
    apart = start_gateway(gateway.db, clock, bank_key=bank)
    try:
        body = bank_result(text, failed={1: "账户已冻结"}, key=None)
        other = bank_result(text, key=None)
        wrong = BankKey("hmac-sha256", "sidecar", bytes(32)).sign(body)
        refused(post_result(apart, body), "unsigned", "the file's MAC is missing")
        unchanged(gateway)
        for mac in (bank.sign(other), wrong, "00"):
            refused(post_result(apart, body, signature=mac), "bad_signature", "hmac-sha256")
            unchanged(gateway)
        r = post_result(apart, body, signature=bank.sign(body).lower())
        assert (r.status_code, r.json()["paid"], len(r.json()["failed"])) == (200, 1, 1), r.text
    finally:
        apart.server.stop()


BANK_A = Bank("ICBC", "工商银行城关支行", BANK_KEY)
BANK_B = Bank("RCC", "农村信用社", BankKey("hmac-sm3", "line", bytes(range(100, 132))))


def test_one_bank_cannot_settle_another_banks_batch(gateway, centre, clock):
    """The office pays through two banks; bank A signs, with its own key, a correct result
    file for bank B's batch (every line failed, to have it sent again): refused with bank B
    named, nothing changes; bank B's own file is then taken."""
    two = start_gateway(gateway.db, clock, banks=Banks({"ICBC": BANK_A, "RCC": BANK_B}, "ICBC"))
    try:
        z, li, _ = centre.records  # type: ignore[attr-defined]
        doc = import_roster(
            two,
            roster(
                f"{z.holder.name},{z.holder.id_number},{z.card_number},H31,1500000,2026-10-08",
                f"{li.holder.name},{li.holder.id_number},{li.card_number},H18,45000,2026-10",
            ),
        )
        send_roster(two, doc["roster"]["id"])
        batch = bank_batch(two, bank="RCC")
        assert (batch["bank"], batch["lines"]) == ("RCC", 2)
        text = payment_file(two, batch["batch"]).decode()
        forged = bank_result(text, {1: "账户不存在", 2: "账户不存在"}, key=BANK_A.key)
        r = post_result(two, forged)
        assert (r.status_code, r.json()["error"]) == (403, "bad_signature"), r.text
        assert "the batch went to agent bank RCC" in r.json()["reason"]
        unchanged(two)
        r = post_result(gateway, forged)  # a gateway that knows bank A's key alone
        assert (r.status_code, r.json()["error"]) == (404, "unknown_bank"), r.text
        unchanged(two)
        r = post_result(two, bank_result(text, key=BANK_B.key))
        assert (r.status_code, r.json()["paid"], r.json()["failed"]) == (200, 2, []), r.text
    finally:
        two.server.stop()


def test_two_batches_built_at_once_get_two_numbers_and_share_no_line(gateway, centre):
    """Two finance officers build a batch at the same moment, each for another roster
    (PostgreSQL: both held inside the gateway at their lines). The batch number was the
    count of batches + 1: both took the same number, and the second, finding the number
    taken once the first committed, was refused 409 ``concurrent_update`` for a batch that
    shared nothing with the first. Each batch gets its own number (the later one the next),
    each line is in exactly one live bank line, of the batch that took it."""
    z, li = centre.records[0], centre.records[1]
    rids = []
    for person, line in ((z, "H18,45000,2026-10"), (li, "H21,58050,2026-10")):
        doc = import_roster(gateway, roster(f"{holder_row(person)},{line}"))
        send_roster(gateway, doc["roster"]["id"])
        rids.append(int(doc["roster"]["id"]))
    answers: dict[int, Any] = {}

    def build(rid: int) -> None:
        body = {"actor": f"finance-{rid}", "rosters": [rid]}
        answers[rid] = admin(gateway, "POST", "/v1/admin/subsidies/bank/batches", json=body)

    threads = [threading.Thread(target=build, args=(rid,)) for rid in rids]
    race_held(
        gateway,
        threads,
        lambda cur: cur.execute("SELECT 1 FROM subsidy_lines FOR UPDATE"),
        waiting=2,
        what="the two batches",
    )
    assert [answers[rid].status_code for rid in rids] == [201, 201], {
        rid: r.text for rid, r in answers.items()
    }
    refs = {rid: answers[rid].json()["batch"] for rid in rids}
    assert len(set(refs.values())) == 2, refs
    assert gateway.count("subsidy_bank_batches") == 2
    with gateway.db.tx() as cur:
        cur.execute(
            "SELECT l.roster_id, bb.reference, COUNT(*) FROM subsidy_bank_lines b"
            " JOIN subsidy_bank_batches bb ON bb.id = b.batch_id"
            " JOIN subsidy_lines l ON l.id = b.line_id GROUP BY l.roster_id, bb.reference"
        )
        assert {(int(r[0]), r[1], int(r[2])) for r in cur.fetchall()} == {
            (rid, refs[rid], 1) for rid in rids
        }
        cur.execute("SELECT COUNT(*) FROM subsidy_lines WHERE bank_line_id IS NULL")
        assert cur.fetchone()[0] == 0
    for rid in rids:  # each payment file holds its own line alone
        text = payment_file(gateway, refs[rid]).decode()
        assert text.count("\nD,") == 1 and "-00001" in text
