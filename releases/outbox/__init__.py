"""The notifications outbox: emails and webhooks written in the same transaction as the decision they tell
of, sent afterwards by a dispatcher (beat) with retries, so an outage of the broker or the mail server delays
a notice and never loses it, nor turns a committed decision into an error."""
