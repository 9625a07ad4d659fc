"""Card-OS management commands for personalisation (FMCOS-style): files, keys, life cycle.

See docs/issuance.md for which parts follow the FMCOS family and which are the
project's own choices.
"""
