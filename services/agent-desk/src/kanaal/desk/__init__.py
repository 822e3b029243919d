"""The agent desk: agents take their next work, see the whole customer, and answer."""
