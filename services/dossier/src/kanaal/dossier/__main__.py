"""`python -m kanaal.dossier` runs the dossier."""

from kanaal.common.service import run
from kanaal.dossier.app import DossierSettings, create_app

if __name__ == "__main__":
    settings = DossierSettings()
    run("dossier", create_app(settings), settings, settings.dossier_port)
