"""The minimisation stream processor: pure transforms, consent ledger, privacy requests."""
