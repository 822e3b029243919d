"""`python -m kanaal.web` runs the web adapter."""

from kanaal.common.service import run
from kanaal.web.app import WebSettings, create_app

if __name__ == "__main__":
    settings = WebSettings()
    run("web", create_app(settings), settings, settings.web_port)
