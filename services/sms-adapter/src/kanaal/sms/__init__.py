"""The SMS adapter: inbound SMS from a gateway's webhook, replies sent through its HTTP API.

Written only with the adapter kit; it is the walk-through of docs/adding-a-channel.md.
"""
