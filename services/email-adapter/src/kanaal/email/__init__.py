"""The E-mail adapter (IMAP in, SMTP out).

Walking skeleton: the service runs, declares the topology and answers /healthz,
/readyz and /metrics; its channel logic is still to be built (see the README).
"""
