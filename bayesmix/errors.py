"""Exceptions that the CLI turns into one-line messages and exit codes."""


class InputError(ValueError):
    """Bad user input (file, column, row, spec key): the CLI exits with code 2."""
