"""The subsidy part of ``ykt demo``: a new card issued, a roster imported, approved and
picked up at the kiosk - on the demo's real gateway (``ClearingPath``).

1. The issuance desk personalises a blank card for a resident and pushes its book's
   records to the gateway's card book.
2. A township's 分户清册 with the Chinese header, amounts in yuan and Henan's items (one
   row with a bad ID number, to show the report) is declared, reviewed by the station,
   published (公示, its masked listing printed) and signed off by the residents, approved
   by the department and sent to finance.
3. The resident taps the card at the kiosk: the approved lines are loaded with one
   normal online load through the gateway, recorded against the roster lines.
   The holder types their ID number: the card alone collects
   nothing.
4. The paid/pending report. The card and its load join the demo's outcome, so the
   settlement check to the fen includes the subsidy.
5. The agent bank (the main channel, for amounts beyond the purse): a second roster
   (农村危房改造, 农作物良种) goes the same way to finance, which builds a payment batch
   and its file; the bank answers with one line failed (account frozen); finance sends
   the failed line again in a new batch and the bank pays it. Bank money never touches
   the card, so it stays out of the settlement check.
"""

from __future__ import annotations

import logging
import secrets
from datetime import date, timedelta
from typing import Any

from terminal.money import format_fen
from terminal.readers.sim import SimReader
from terminal.roles.registry import Applicant
from terminal.runtime.assembly import Parts, assemble
from terminal.runtime.config import TerminalConfig
from terminal.uplink import GatewayClient
from terminal.uplink.issuance import push_issuance

DESK_ID = "310000000080"
RESIDENT = Applicant("张三", "11010519491231002X", card_kind=3)  # GB 11643's worked example
BAD_ID = "110105194912310021"  # the same number with a wrong check character


def run_subsidy_demo(path: Any, result: Any, kiosk_id: bytes, out: Any = print) -> bool:
    """Issue, declare, approve and pick up; True when the pickup paid every approved line."""
    from gateway.cards import registry_lookup
    from gateway.subsidy import pickup, store
    from gateway.subsidy.catalogue import load_catalogue
    from gateway.subsidy.publication import publication_rows
    from simulators.profiles import DEMO_ISSUERS, blank_card, demo_chip_id, demo_psam
    from terminal.cli.desk_parts import DeskParts

    out("== Issuance desk -> gateway card book; subsidy roster -> approval -> kiosk pickup")
    blank = blank_card(demo_chip_id(978))
    desk_client = path.register(DESK_ID, "card-centre", role="issuance")
    config = TerminalConfig(
        role="desk",
        journal=str(path.dir / "desk.db"),
        terminal_id=DESK_ID,
        registry=str(path.dir / "desk-cards.db"),
        issuer_id=DEMO_ISSUERS["shanghai"].hex().upper(),
        gateway=path.gateway.url,
    )
    parts = Parts(
        card_reader=SimReader(blank, name="desk"),
        sam_reader=SimReader(demo_psam(DESK_ID), name=f"psam {DESK_ID}"),
        client=desk_client,
    )
    desk_device = assemble(config, desk=DeskParts(), parts=parts)
    desk = desk_device.role
    record = desk.issue(RESIDENT).record
    card = blank.purse
    assert card is not None
    registry = desk.registry
    pushed = push_issuance(desk_client, registry.export, desk_id=registry.desk_id)
    desk_device.close(flush_timeout=0)
    registry.close()
    out(
        f"   issued {record.card_number} to {RESIDENT.name} (elderly card); "
        f"{pushed.sent} issuance record(s) -> gateway: {pushed.counts}"
    )

    holder = f"{RESIDENT.name},{RESIDENT.id_number},{record.card_number}"
    today = date.today()
    month = f"{today:%Y-%m}"
    place = "城关镇,东街社区,民政局"
    roster = (
        "姓名,身份证号码,一卡通卡号,补贴项目,金额(元),发放期间,乡镇(街道),村(社区),主管部门\n"
        f"{holder},农村分散供养五保户补助资金,200.00,{month},{place}\n"
        f"{holder},抚恤(优抚)补助资金,150.00,{month},{place}\n"
        f"李四,{BAD_ID},{record.card_number},农村分散供养五保户补助资金,200.00,{month},{place}\n"
    ).encode()
    imported = store.import_roster(
        path.db,
        roster,
        load_catalogue(),
        declared_by="王会计",
        title=f"{month} 城关镇民政补贴",
        source="demo-roster.csv",
        cards=registry_lookup(path.db),
    )
    r = imported.roster
    assert r is not None
    out(
        f"   roster #{r.id} declared by {r.declared_by}: {r.line_count} line(s) "
        f"{format_fen(r.total_fen)}, {len(imported.report.rejected)} row(s) rejected"
    )
    for rej in imported.report.rejected:
        out(f"      row {rej.row} rejected: {'; '.join(rej.reasons)}")
    store.review(path.db, r.id, "赵审核")
    start = today - timedelta(days=10)
    pub = store.publish(path.db, r.id, "钱站长", start, start + timedelta(days=6), "东街社区公示栏")
    for row in publication_rows(store.roster_lines(path.db, r.id)):
        out(
            f"      公示 {row['no']}  {row['name']}  {row['id_number']}  {row['item']}  "
            f"{format_fen(row['amount_fen'])}  {row['period']}"
        )
    store.sign_off(path.db, r.id, "钱站长", 12, "签字表存档")
    approved = store.approve(path.db, r.id, "李科长")
    sent = store.send_to_finance(path.db, r.id, "孙财政")
    out(
        f"   reviewed by {approved.reviewed_by}; 公示 {pub.starts_on}..{pub.ends_on}, signed off; "
        f"approved by {approved.approved_by}; sent to finance by {sent.sent_by}"
    )

    kiosk_hex = kiosk_id.hex().upper()
    config = TerminalConfig(
        role="kiosk",
        journal=str(result.journals["kiosk"].path),
        terminal_id=kiosk_hex,
        gateway=path.gateway.url,
        pickup=True,
    )
    with GatewayClient(path.gateway.url, path.tokens[kiosk_hex]) as client:
        parts = Parts(
            card_reader=SimReader(blank, name="kiosk"),
            sam_reader=SimReader(demo_psam(kiosk_hex), name=f"psam {kiosk_hex}"),
            journal=result.journals["kiosk"],
            client=client,
        )
        kiosk = assemble(config, parts=parts).role
        out("   at the kiosk the holder taps the card and types the ID number")
        got = kiosk.pick_up(RESIDENT.id_number)
        assert got.load is not None
        out(f"   kiosk pickup: {got.message()}; balance {format_fen(got.balance_after)}")
        logging.getLogger(__name__).info(
            "subsidy pickup reference %s TAC %s",
            got.load.authorization.reference,
            got.load.tac.hex().upper(),
        )
        again = kiosk.pick_up(RESIDENT.id_number)
    result.cards.append(card)
    result.opening[card.serial] = 0
    result.loads.append(got.load)
    doc = pickup.payment_report(path.db, r.id)
    paid, pending = doc["totals"]["paid"], doc["totals"]["pending"]
    out(
        f"   report: paid {paid['lines']} line(s) {format_fen(paid['amount_fen'])}, pending "
        f"{pending['lines']} line(s) {format_fen(pending['amount_fen'])}; "
        f"the resident taps again: {again.message()}"
    )
    kiosk_ok = paid["amount_fen"] == r.total_fen and again.load is None
    bank_ok = _bank_step(path.db, record.card_number, out)
    return kiosk_ok and bank_ok and card.balance == r.total_fen


def _bank_answers(payment_csv: str, failed: dict[int, str], key: Any) -> bytes:
    """What the agent bank sends back for a payment file: each line paid (S) or failed (F)
    with its reason, in the result layout of docs/subsidy.md, signed with the bank's key."""
    rows = [line.split(",") for line in payment_csv.strip().splitlines()]
    details = [d for d in rows if d[0] == "D"]
    out = [",".join(rows[0])]
    for d in details:
        seq = int(d[1])
        state, why = ("F", failed[seq]) if seq in failed else ("S", "")
        out.append(f"D,{seq},{d[2]},{d[5]},{d[6]},{state},{why},BK{seq:08d}")
    out.append(f"T,{len(details)},{sum(int(d[5]) for d in details)}")
    return bytes(key.signed(("\n".join(out) + "\n").encode()))


def _bank_step(db: Any, card_number: str, out: Any) -> bool:
    """Roster → finance → payment batch and file → bank result with one failed line →
    the failed line sent again → paid. True when every line of the roster is paid."""
    from gateway.cards import registry_lookup
    from gateway.subsidy import bank, pickup, store
    from gateway.subsidy.catalogue import load_catalogue

    out("== Agent bank: payment file -> bank result -> failed line sent again -> paid")
    # the key the card centre shares with its agent bank (a fresh one for the demo)
    bank_key = bank.BankKey("hmac-sm3", "line", secrets.token_bytes(16))
    holder = f"{RESIDENT.name},{RESIDENT.id_number},{card_number}"
    year = f"{date.today():%Y}"
    place = "城关镇,东街社区,住建局"
    roster = (
        "姓名,身份证号码,一卡通卡号,补贴项目,金额(元),发放期间,乡镇(街道),村(社区),主管部门\n"
        f"{holder},农村危房改造补助资金,15000.00,{year},{place}\n"
        f"{holder},农作物良种补贴资金,320.50,{year},{place}\n"
    ).encode()
    imported = store.import_roster(
        db,
        roster,
        load_catalogue(),
        declared_by="王会计",
        title=f"{year} 城关镇危房改造和良种补贴",
        source="demo-bank-roster.csv",
        cards=registry_lookup(db),
    )
    r = imported.roster
    assert r is not None
    store.review(db, r.id, "赵审核")
    start = date.today() - timedelta(days=10)
    store.publish(db, r.id, "钱站长", start, start + timedelta(days=6), "东街社区公示栏")
    store.sign_off(db, r.id, "钱站长", 12, "签字表存档")
    store.approve(db, r.id, "李科长")
    store.send_to_finance(db, r.id, "孙财政")
    out(
        f"   roster #{r.id}: {r.line_count} line(s), {format_fen(r.total_fen)}, approved and "
        "sent to finance (too much for the card's purse: the bank pays it)"
    )

    def send(batch: dict[str, Any], failed: dict[int, str]) -> dict[str, Any]:
        head, lines = bank.batch_lines(db, batch["batch"])
        text = bank.payment_csv(head, lines)
        out(
            f"   finance sends payment file {batch['batch']} to the bank: "
            f"{batch['lines']} line(s), {format_fen(batch['total_fen'])}"
        )
        signed = _bank_answers(text, failed, bank_key)
        result = bank.import_result(db, signed, "孙财政", bank_key)
        words = (
            f"   the bank answers: {result['paid']} line(s) paid, {format_fen(result['paid_fen'])}"
        )
        for f in result["failed"]:
            words += f"; line {f['reference']} not paid: {f['reason']}"
        out(words)
        return result

    first = bank.create_batch(db, "孙财政", roster_ids=[r.id])
    result = send(first, {2: "账户已冻结"})
    track = bank.tracking(db, batch=first["batch"])["totals"]
    out(
        f"   tracking: {track['paid']['lines']} paid, {track['failed']['lines']} failed "
        "(account frozen); once the holder has it unfrozen, finance sends the line again"
    )
    again = bank.create_batch(db, "孙财政", reissue_of=first["batch"])
    second = send(again, {})
    doc = pickup.payment_report(db, r.id)
    paid = doc["totals"]["paid"]
    out(
        f"   report: roster #{r.id} paid {paid['lines']} of {r.line_count} line(s), "
        f"{format_fen(paid['amount_fen'])}, by the bank"
    )
    return (
        len(result["failed"]) == 1 and second["failed"] == [] and paid["amount_fen"] == r.total_fen
    )
