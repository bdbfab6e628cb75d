"""The partner portal: a member's organisation, grants, terms, tokens, requests and files."""
