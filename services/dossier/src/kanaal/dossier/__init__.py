"""The dossier: the system of record for parties, cases, contacts and their timeline."""
