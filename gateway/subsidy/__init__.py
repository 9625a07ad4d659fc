"""Public subsidies (惠民补贴) paid onto cards: the catalogue of items and roster validation.

Pure logic for now (no storage): the approval workflow, kiosk pickup and the tables
that record payments belong to the gateway (issue 7, after issue 4).
"""
