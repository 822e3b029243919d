"""`python -m kanaal.router` runs the router."""

from kanaal.common.service import run
from kanaal.router.app import RouterSettings, create_app

if __name__ == "__main__":
    settings = RouterSettings()
    run("router", create_app(settings), settings, settings.router_port)
