"""PBOC ED/EP and JT/T 978 e-purse: commands, file layouts, and transaction flows."""
