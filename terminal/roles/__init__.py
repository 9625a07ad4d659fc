"""Terminal roles: validator, POS, kiosk and issuance desk, each built on TerminalSession."""
