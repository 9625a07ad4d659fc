"""The campus part of ``ykt demo``: one card at a door, a time clock, the canteen and the
library, on the demo's real gateway; a cloned card refused at the door.

The back office enrols a student and binds the card, credits the month's allowance (补助);
the door, clock, till and library desk are terminals of their roles with a campus SAM,
each syncing its lists from the gateway. Every step is the card proving its key to the
terminal's SAM (docs/campus.md), and each is printed as the operator would see it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

from terminal.money import format_fen
from terminal.words import door_words, say

DOOR_ID, CANTEEN_ID, LIBRARY_ID = "310000000501", "310000000502", "310000000503"
PERSON = "S2026001"
DOOR_RULES = """
[zones.daytime]
days = [1, 2, 3, 4, 5, 6, 7]
from = "06:00"
until = "23:00"
[groups.students]
doors = ["east-in", "east-out", "clock-in", "clock-out"]
zone = "daytime"
[doors.east-in]
area = "campus"
direction = "in"
paired = "east-out"
[doors.east-out]
area = "campus"
direction = "out"
paired = "east-in"
[doors.clock-in]
area = "lab"
purpose = "attendance"
[doors.clock-out]
area = "lab"
direction = "out"
purpose = "attendance"
"""
CANTEEN_RULES = """
day_limit = 6000
[meals.lunch]
from = "10:30"
until = "13:30"
limit = 2500
"""


def run_campus_demo(path: Any, workdir: Path, out: Any = print) -> bool:
    """Door, clock-in, lunch from the allowance, a loan, a clone refused; True when each
    step came out as it should."""
    from gateway.campus import allowance, store
    from simulators.campus import campus_card, clone
    from simulators.campus_site import build_desk, build_till, campus_parts, presented
    from terminal.campus.door import sync_access, upload_events
    from terminal.readers.sim import SimReader
    from terminal.runtime.assembly import assemble_door
    from terminal.runtime.config import TerminalConfig

    out("== Campus one-card: door, time clock, canteen, library (the card proves its key)")
    store.add_person(
        path.db, store.Person(PERSON, "李明", "students", date(2024, 9, 1), date(2028, 7, 31))
    )
    card = campus_card(97, PERSON, balance=2_000)
    store.bind_card(path.db, card.serial.hex(), card.issuer_id.hex(), PERSON)
    allowance.credit_month(
        path.db, "2026-11", "demo roster", [{"person_no": PERSON, "amount_fen": 30_000}]
    )
    clock = _Clock(datetime(2026, 11, 30, 8, 30))
    antenna = SimReader(name="campus")

    def parts(tid: str, client: Any) -> Any:
        return campus_parts(antenna, tid, clock, client, name=f"sam {tid}")

    def tap(what: Any, the_card: Any) -> Any:
        return presented(antenna, the_card, what)

    door_client = path.register(DOOR_ID, "campus", role="door")
    rules_file = workdir / "door-rules.toml"
    rules_file.write_text(DOOR_RULES, encoding="utf-8")
    config = TerminalConfig(
        role="door",
        journal=str(workdir / "door.db"),
        terminal_id=DOOR_ID,
        hotlist=str(workdir / "door-hotlist.db"),
        door_rules=str(rules_file),
        door_point="east-in",
    )
    door_device = assemble_door(config, parts=parts(DOOR_ID, door_client))
    door = door_device.door
    sync_access(door_client, door.access, door.hotlist)
    ok = True
    entry = tap(lambda: door.present("east-in"), card)
    out(f"   door east-in: {PERSON} {door_words(entry)}")
    clock.now = datetime(2026, 11, 30, 8, 40)
    clocked = tap(lambda: door.present("clock-in"), card)
    out(f"   time clock: {PERSON} clocked in at {clock.now:%H:%M}" if clocked.granted else
        f"   time clock: {PERSON} {door_words(clocked)}")  # fmt: skip
    ok = ok and entry.granted and clocked.granted

    clock.now = datetime(2026, 11, 30, 12, 0)
    till_client = path.register(CANTEEN_ID, "campus", role="pos")
    (workdir / "canteen-rules.toml").write_text(CANTEEN_RULES, encoding="utf-8")
    till_device = build_till(
        parts(CANTEEN_ID, till_client), workdir / "canteen-rules.toml", workdir, "canteen-"
    )
    till = till_device.role
    lunch = tap(lambda: till.sell(1_200, "allowance"), card)
    out(
        f"   canteen {lunch.meal}: {PERSON} paid {format_fen(lunch.amount)} from the allowance"
        f" 补助, {format_fen(lunch.balance_after)} left"
    )
    ok = ok and lunch.balance_after == 28_800

    clock.now = datetime(2026, 11, 30, 15, 0)
    desk_client = path.register(LIBRARY_ID, "campus", role="library")
    (workdir / "library-rules.toml").write_text("[limits]\nstudents = 5\n", encoding="utf-8")
    library = build_desk(
        parts(LIBRARY_ID, desk_client), workdir / "library-rules.toml", workdir, "library-"
    )
    desk = library.desk
    sync_access(desk_client, desk.access, desk.hotlist)
    loan = tap(lambda: desk.borrow("ISBN-9787020002207"), card)
    out(f"   library: {PERSON} borrowed {loan.book} ({loan.held} of {loan.limit} books held)")
    ok = ok and loan.held == 1

    clock.now = datetime(2026, 11, 30, 18, 0)
    fake = tap(lambda: door.present("east-out"), clone(card))
    out(f"   door east-out: a cloned card (same UID and files) {say('door.clone_refused')}")
    logging.getLogger(__name__).info("cloned card refused: %s", fake.reason)
    ok = ok and not fake.granted
    uploaded = upload_events(door_client, door.journal, DOOR_ID)
    out(f"   {uploaded} door events uploaded to the gateway once")
    door_device.close()
    till_device.close(flush_timeout=0)
    library.close()
    return ok


class _Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now
