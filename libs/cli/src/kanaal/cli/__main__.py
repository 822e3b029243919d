"""`python -m kanaal.cli` is the `kanaal` command."""

from kanaal.cli.main import main

if __name__ == "__main__":
    main()
