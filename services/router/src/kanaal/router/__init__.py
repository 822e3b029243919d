"""The router: turns registered contacts into work items in the right work queue."""
