"""The `kanaal` command: one entry point that gathers what every package contributes."""
