"""Errors the pack raises for bad input. Each message says what is wrong, where, and what to do."""


class LTX2InputError(ValueError):
    """A file, folder or value given to the pack cannot be used as it is."""


class LTX2LoadError(RuntimeError):
    """A component could not be built completely from its files."""


class LTX2NonFiniteError(RuntimeError):
    """A stage's output holds NaN or infinite values: a video made from it would be black or noise."""
