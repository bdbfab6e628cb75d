"""Public HTML pages."""
