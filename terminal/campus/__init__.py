"""Campus and enterprise one-card roles on the same cards: door, attendance, canteen, library.

``card.py`` is the identity scheme every role starts with (INTERNAL AUTHENTICATE checked
by the SAM, then the identity file); the roles decide from rules held as data. See
docs/campus.md.
"""
