"""What the registry announces, for the layers above it to act on: releases/ audits each of these and tells
staff where needed (releases/registry_events.py). The registry never imports releases/; it only sends.

Sent inside the transaction that made the change, so a receiver's writes commit or roll back with it.
"""

from django.dispatch import Signal

# A new revision of a size's files was made: kwargs revision, actor.
revision_created = Signal()
# Someone asked for text to be removed from a dataset: kwargs request (DataRemovalRequest), ip.
removal_requested = Signal()
# Any other record of what exists was created, changed or deleted (a family, size, card, eval result, training
# run, dataset, detection result, a removal request's handling): kwargs instance (sent before a delete, while it
# still has its pk), action ("<noun>.created|updated|deleted"), actor (a user, None for the system), before and
# after (the fields that moved, as JSON values; None on the side where the record did not exist), ip, data.
# registry/changes.py sends it; nothing else should.
record_changed = Signal()
