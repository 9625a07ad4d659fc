"""Why a door (or a library desk serving from the door's lists) refuses a card: a code and its
values (``DoorReason``), so the operator's line is in the terminal's language
(terminal/words.py) while the access event and the logs keep the English."""

from __future__ import annotations

from enum import StrEnum

from terminal.notes import Note


class DoorRefusal(StrEnum):
    NOT_GENUINE = "not-genuine"  # detail: what the authentication found
    NOT_READ = "not-read"  # detail: the reader's or card's error
    HOTLISTED = "hotlisted"
    NOT_ENROLLED = "not-enrolled"
    BLOCKED = "blocked"
    IDENTITY = "identity"
    NOT_VALID = "not-valid"  # day, valid_from, valid_until
    NO_GROUP_RULES = "no-group-rules"  # group
    DOOR_NOT_ALLOWED = "door-not-allowed"  # group, door
    GROUP_NOT_VALID = "group-not-valid"  # group, day
    OUTSIDE_ZONE = "outside-zone"  # zone, weekday, time
    INSIDE = "inside"  # area: anti-passback, already in
    OUTSIDE = "outside"  # area: anti-passback, already out


# The English of each refusal: the access event's and the logs' words, the catalogue's English.
DOOR_TEXT: dict[DoorRefusal, str] = {
    DoorRefusal.NOT_GENUINE: "not a genuine campus card: {detail}",
    DoorRefusal.NOT_READ: "card not read: {detail}",
    DoorRefusal.HOTLISTED: "card reported lost or blocked (hotlist)",
    DoorRefusal.NOT_ENROLLED: "card is not enrolled at this site",
    DoorRefusal.BLOCKED: "card blocked by the back office",
    DoorRefusal.IDENTITY: "identity file does not match the card's binding",
    DoorRefusal.NOT_VALID: "card not valid on {day} ({valid_from}..{valid_until})",
    DoorRefusal.NO_GROUP_RULES: "group '{group}' has no door rules",
    DoorRefusal.DOOR_NOT_ALLOWED: "group '{group}' may not use door '{door}'",
    DoorRefusal.GROUP_NOT_VALID: "group '{group}' is not valid on {day}",
    DoorRefusal.OUTSIDE_ZONE: "outside time zone '{zone}' ({weekday} {time})",
    DoorRefusal.INSIDE: "anti-passback: already inside '{area}'",
    DoorRefusal.OUTSIDE: "anti-passback: already outside '{area}'",
}


class DoorReason(Note):
    """Why a door refused a card: the English sentence, with its code and values."""

    texts = DOOR_TEXT
    prefix = "door"
