"""The web adapter: the JSON API through which a website sends contacts."""
