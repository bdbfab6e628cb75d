"""Release decisions: stage-change requests and their approvals, applying them (now or after an embargo),
reviews, the release factors, dataset publication, and the second factor on decisions."""
