"""Executing a plan: the run state machine, task attempts, context, events and the result."""
