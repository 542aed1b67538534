"""The one exception type users see as a single line (the CLI prints it without a traceback)."""


class NasflowError(Exception):
    """Bad input or an unmet precondition: the message names what is wrong and how to fix it."""
