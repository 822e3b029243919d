"""`python -m kanaal.router` runs the router; it refuses to start on a bad routing.yaml."""

import sys

from kanaal.common.config import ConfigError
from kanaal.common.service import run
from kanaal.router.app import RouterSettings, create_app

if __name__ == "__main__":
    settings = RouterSettings()
    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"router: not starting, configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    run("router", app, settings, settings.router_port)
