"""Open Kanaal's shared contract: the contact message, the topology and how to use the broker."""
