"""``boom`` raises ValueError (no retries); ``after`` is downstream of it; ``independent``
is not. With ``critical=True`` boom is CRITICAL, so its failure stops the run."""

from __future__ import annotations

from flowdsl import Flow, Priority

ORDER = ("ok", "boom", "after", "independent")


class Boom(ValueError):
    """The error ``boom`` raises."""


def build(*, critical: bool = False) -> Flow:
    flow = Flow("failing")

    @flow.task
    def ok():
        return "ok"

    @flow.task(priority=Priority.CRITICAL if critical else Priority.NORMAL)
    def boom(ok):
        raise Boom(f"boom after {ok}")

    @flow.task
    def after(boom):
        return "unreachable"

    @flow.task
    def independent():
        return "independent"

    return flow
