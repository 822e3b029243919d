"""`python -m kanaal.email` runs the email adapter."""

from kanaal.common.service import run
from kanaal.email.app import EmailSettings, create_app

if __name__ == "__main__":
    settings = EmailSettings()
    run("email", create_app(settings), settings, settings.email_port)
