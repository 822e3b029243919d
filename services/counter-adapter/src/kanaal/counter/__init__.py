"""The counter (balie) adapter: kiosk check-ins and desk events, per office location."""
