"""The Counter (balie) adapter (kiosk check-in, desk events).

Walking skeleton: the service runs, declares the topology and answers /healthz,
/readyz and /metrics; its channel logic is still to be built (see the README).
"""
