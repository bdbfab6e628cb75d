"""Settings modules: `base` runs with no environment (the demo), `production` requires its secrets, `test` is for pytest."""
