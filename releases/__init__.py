"""Who may have what exists, and how that changes: stages (stages.py), governance/, access/ and audit/."""
