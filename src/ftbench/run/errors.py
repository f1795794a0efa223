"""The exceptions a run's parts raise for what the user can fix, kept in a module of their own
that imports nothing of ftbench, so the lowest modules (override parsing, redaction) can raise
them without importing how failures are reported (``ftbench.run.failures``)."""


class UserError(ValueError):
    """A bad value supplied by the user: the message names it and what is allowed."""
