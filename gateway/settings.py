"""What a gateway is configured with: identity, admin token, clearing, limits, body sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway import cards, ingest, loads, numbers
from gateway.campus.library import LoanLimits
from gateway.subsidy.bank import BankKey, Banks
from gateway.subsidy.holder import HolderRules
from terminal.qr.checks import QrPolicy

MAX_ROSTER_BYTES = 10 * 1024 * 1024
DEFAULT_BODY_LIMIT = 64 * 1024
BODY_LIMITS = {  # path prefix -> bytes; every other route takes DEFAULT_BODY_LIMIT
    "/v1/batches": ingest.MAX_BODY_BYTES,
    "/v1/issuance/records": 4 * 1024 * 1024,
    "/v1/admin/subsidies/rosters": MAX_ROSTER_BYTES,
}


@dataclass
class GatewaySettings:
    gateway_id: str = "gateway"
    admin_token: str | None = None
    clearing_url: str | None = None
    forwarders: int = 1
    forward_batch: int = 500
    lease_ms: int = 30_000
    poll_interval: float = 0.5
    max_batch_records: int = ingest.MAX_BATCH_RECORDS
    load_limits: loads.LoadLimits = field(default_factory=loads.LoadLimits)
    subsidy_catalogue: str | None = None  # TOML/JSON catalogue file; None: the demo one
    subsidy_check_cards: bool = True  # roster cards must be active in the card book
    pickup_holder: HolderRules = field(default_factory=HolderRules)  # wrong answers, lock-out
    stale_claim_ms: int = numbers.STALE_CLAIM_MS  # a claim may be released when this old
    carry: cards.CarryRules = field(default_factory=cards.CarryRules)  # replacement balances
    bank_key: BankKey | None = None  # the agent bank's result-file MAC; None: no file imported
    banks: Banks | None = None  # several agent banks (a banks file); then bank_key is unused
    library: LoanLimits = field(default_factory=LoanLimits)  # books held at once, per group
    # ride codes at ingest: the clock skew and validity maximum (future_skew, max_validity),
    # set to clearing's values so the gateway refuses what clearing would reject
    qr: QrPolicy = field(default_factory=QrPolicy)
    body_limits: dict[str, int] = field(default_factory=lambda: dict(BODY_LIMITS))
    default_body_limit: int = DEFAULT_BODY_LIMIT

    def body_limit(self, path: str) -> int:
        """The byte limit for a request body on ``path``."""
        for prefix, limit in self.body_limits.items():
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.default_body_limit
