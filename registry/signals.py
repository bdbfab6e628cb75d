"""What the registry announces, for the layers above it to act on: releases/ audits each of these and tells
staff where needed (releases/registry_events.py). The registry never imports releases/; it only sends.

Sent inside the transaction that made the change, so a receiver's writes commit or roll back with it.
"""

from django.dispatch import Signal

# A file was registered for a size: kwargs artifact, replaced (the Artifact row it replaced, or None), actor.
artifact_registered = Signal()
# Someone asked for text to be removed from a dataset: kwargs request (DataRemovalRequest), ip.
removal_requested = Signal()
