"""`Hooks`: the ``on_success`` / ``on_failure`` / ``on_retry`` a flow or a task declares.

Data only: `flowdsl.observers.hooks` calls them with the runtime's events.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

__all__ = ["Hook", "Hooks"]

Hook = Callable[[Any], Any]


@attrs.frozen(kw_only=True)
class Hooks:
    """The hooks of one task or of one flow (None: no hook)."""

    on_success: Hook | None = attrs.field(default=None, eq=False)
    on_failure: Hook | None = attrs.field(default=None, eq=False)
    on_retry: Hook | None = attrs.field(default=None, eq=False)
    #: whose hooks they are, as a warning names them
    owner: str = attrs.field(default="the flow's", eq=False)

    def __bool__(self) -> bool:
        return (self.on_success is not None or self.on_failure is not None
                or self.on_retry is not None)
