"""The `stagegate` command-line client: downloads weights and datasets through signed links."""
