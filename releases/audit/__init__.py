"""The audit trail: an append-only, hash-chained record of every governance event, and its verification."""
