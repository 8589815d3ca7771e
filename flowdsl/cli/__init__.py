"""The ``flowdsl`` command line (click); ``main`` is the console script's entry point.

Only this package imports click and rich: ``import flowdsl`` does not.
"""

from .app import main

__all__ = ["main"]
