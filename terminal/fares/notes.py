"""Notes on how a fare was reached, and the detail of a transport refusal: a code and its
values (``FareNote``), so the operator's catalogue (terminal/words.py) says them in the
terminal's language while the logs, journal and ``--json`` keep the English."""

from __future__ import annotations

from enum import StrEnum

from terminal.notes import Note


class NoteCode(StrEnum):
    # how a fare was reached (terminal/fares/engine.py)
    CONCESSION = "concession"  # kind (the fare file's name), percent
    TRANSFER = "transfer"  # minutes
    MISSING_EXIT = "missing-exit"  # station
    NO_ENTRY_MAX_FARE = "no-entry-max-fare"
    OVERTIME = "overtime"  # minutes
    ENTRY_DEPOSIT = "entry-deposit"
    # an opening (a rent, an entry) not believed (terminal/roles/transport/base.py)
    OPENING_NOT_LOGGED = "opening-not-logged"
    OPENING_IN_FUTURE = "opening-in-future"
    JOURNAL_EARLIER = "journal-earlier"
    # bike and parking closings
    NO_RENT_MAX_FEE = "no-rent-max-fee"
    DEPOSIT_CREDITED = "deposit-credited"  # amount
    NO_ENTRY_DAILY_CAP = "no-entry-daily-cap"
    NO_ENTRY = "no-entry"
    # the detail of a transport refusal (the tap's message)
    OVER_METER_LIMIT = "over-meter-limit"  # amount, maximum
    RENTING = "renting"  # vehicle, since
    RENTED_SINCE = "rented-since"  # since (the card's record names no bike)
    RENTED_HERE = "rented-here"  # since
    DEPOSIT_SHORT = "deposit-short"  # deposit
    NO_ROUTE_FARE = "no-route-fare"  # origin, destination
    PARKED = "parked"  # since
    SEE_ATTENDANT = "see-attendant"  # why: the notes that say why no entry was found
    STAY_TOO_LONG = "stay-too-long"  # since, days


# The English of each note: the logs' words, and the catalogue's English sentence.
NOTE_TEXT: dict[NoteCode, str] = {
    NoteCode.CONCESSION: "{kind} card pays {percent}%",
    NoteCode.TRANSFER: "transfer within {minutes} min",
    NoteCode.MISSING_EXIT: "no exit recorded after entry at {station}",
    NoteCode.NO_ENTRY_MAX_FARE: "no entry recorded: maximum fare",
    NoteCode.OVERTIME: "over {minutes} min in the system",
    NoteCode.ENTRY_DEPOSIT: "entry deposit credited",
    NoteCode.OPENING_NOT_LOGGED: "the card's opening is not in its transaction log",
    NoteCode.OPENING_IN_FUTURE: "the card's opening time is in the future",
    NoteCode.JOURNAL_EARLIER: "the journal's opening is earlier than the card's",
    NoteCode.NO_RENT_MAX_FEE: "no rent found: maximum fee",
    NoteCode.DEPOSIT_CREDITED: "deposit {amount} credited",
    NoteCode.NO_ENTRY_DAILY_CAP: "no entry recorded: one daily cap",
    NoteCode.NO_ENTRY: "no entry recorded",
    NoteCode.OVER_METER_LIMIT: "meter amount {amount} is above the fare file's maximum {maximum}",
    NoteCode.RENTING: "card already renting {vehicle} since {since}",
    NoteCode.RENTED_SINCE: "card already renting a bike since {since}",
    NoteCode.RENTED_HERE: "card already renting: rented here at {since}, not returned",
    NoteCode.DEPOSIT_SHORT: "insufficient balance for the deposit ({deposit})",
    NoteCode.NO_ROUTE_FARE: "no coach fare from {origin} to {destination}",
    NoteCode.PARKED: "card already parked since {since}: exit first",
    NoteCode.SEE_ATTENDANT: "refused: {why}: see the attendant",
    NoteCode.STAY_TOO_LONG: "entry {since} is over {days} days ago",
}


class FareNote(Note):
    """A note on how a fare was reached, or the detail of a transport refusal."""

    texts = NOTE_TEXT
    prefix = "note"
