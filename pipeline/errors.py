"""The error every stage raises for bad input: one floor below the stages, so any can import it."""


class DataError(Exception):
    """Bad input data or files: the message names the file and what is wrong with it."""
