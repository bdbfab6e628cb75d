"""Starts and finds the local services the demo and the tests need: PostgreSQL, Redis, SeaweedFS S3."""
