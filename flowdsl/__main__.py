"""``python -m flowdsl``: the ``flowdsl`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="flowdsl")
