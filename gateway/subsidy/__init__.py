"""Public subsidies (惠民补贴) paid onto cards.

``catalogue`` and ``roster`` are the pure part: the items and the per-row checks of a
roster. ``store`` keeps rosters at the gateway with their approval workflow and audit
trail, ``pickup`` pays approved lines at kiosks with online loads (never twice) and
reports what is paid and pending; gateway/api/subsidies.py serves both over HTTP. See
docs/subsidy.md.
"""
