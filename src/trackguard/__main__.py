"""``python -m trackguard`` is the ``trackguard`` command."""

from trackguard.cli import main

if __name__ == "__main__":
    main()
