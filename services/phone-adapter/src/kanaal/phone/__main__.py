"""`python -m kanaal.phone` runs the phone adapter."""

from kanaal.common.service import run
from kanaal.phone.app import PhoneSettings, create_app

if __name__ == "__main__":
    settings = PhoneSettings()
    run("phone", create_app(settings), settings, settings.phone_port)
