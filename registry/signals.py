"""What the registry announces, for the layers above it to act on: releases/ audits each of these and tells
staff where needed (releases/registry_events.py). The registry never imports releases/; it only sends.

Sent inside the transaction that made the change, so a receiver's writes commit or roll back with it.
"""

from django.dispatch import Signal

# A new revision of a size's files was made: kwargs revision, actor.
revision_created = Signal()
# Someone asked for text to be removed from a dataset: kwargs request (DataRemovalRequest), ip.
removal_requested = Signal()
