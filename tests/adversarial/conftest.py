"""The adversarial suite: one module per actor that may lie (docs/security.md).

Each test performs an attack against the real parts (uvicorn gateway, SQLite and
PostgreSQL, software cards and PSAM), checks the refusal and its reason, and proves that
nothing was stored, paid or lost. Modules:

- ``test_hostile_kiosk.py``      a kiosk (or its token) lying about loads and pickups
- ``test_hostile_validator.py``  a validator or POS lying in its uploads
- ``test_outside_attacker.py``   anyone on the network: bodies, headers, tokens, encodings
- ``test_careless_operator.py``  operators and their files: rosters, fares, cards, tokens
- ``test_hostile_desk.py``       an issuance desk numbering cards itself or posing as another
- ``test_hostile_card.py``       a card (or a recorded trace) answering what it likes
- ``test_hostile_gateway.py``    whatever answers a terminal at the gateway's address
- ``test_api_fuzz.py``           every endpoint of the OpenAPI schema, fuzzed
"""

from tests.gateway_fixtures import clearing, db, db_url, gateway, pg_cluster

__all__ = ["clearing", "db", "db_url", "gateway", "pg_cluster"]
