"""The audit trail: an append-only record of every change to who can get what, sealed into a hash chain by one
sealer, with Ed25519-signed checkpoints published outside the database, and its verification."""
