"""`python -m kanaal.desk` runs the agent desk; it refuses to start on a bad configuration."""

import sys

from kanaal.common.config import ConfigError
from kanaal.common.service import run
from kanaal.desk.app import DeskSettings, create_app

if __name__ == "__main__":
    settings = DeskSettings()
    try:
        app = create_app(settings)
    except (ConfigError, ValueError) as exc:
        print(f"desk: not starting, configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    run("desk", app, settings, settings.desk_port)
