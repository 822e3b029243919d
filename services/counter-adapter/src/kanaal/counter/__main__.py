"""`python -m kanaal.counter` runs the counter adapter."""

from kanaal.common.service import run
from kanaal.counter.app import CounterSettings, create_app

if __name__ == "__main__":
    settings = CounterSettings()
    run("counter", create_app(settings), settings, settings.counter_port)
