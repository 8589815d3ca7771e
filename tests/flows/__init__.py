"""One fixture module per graph shape; each has ``build() -> Flow`` returning a fresh flow.

Handlers are defined inside ``build()``, so no flow state is shared between tests. The
modules also export the facts tests assert on (``ORDER``, ``INPUTS``, ``CYCLE`` ...).
"""
