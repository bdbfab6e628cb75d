"""Who may have what: the access rule (rules.py), partners and their members, terms of use, grants and access
requests, API tokens, and the signed links that hand out files."""
