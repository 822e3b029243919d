"""`python -m kanaal.sms` runs the SMS adapter."""

from kanaal.common.service import run
from kanaal.sms.app import SmsSettings, create_app

if __name__ == "__main__":
    settings = SmsSettings()
    run("sms", create_app(settings), settings, settings.sms_port)
