"""The one exception type users see as a single line (the CLI prints it without a traceback)."""


class NasflowError(Exception):
    """Bad input or an unmet precondition: the message names what is wrong and how to fix it."""


class Terminated(BaseException):
    """SIGTERM arrived (a SLURM time limit or preemption, `kill`): not an error of the run. Like
    KeyboardInterrupt it passes through `except Exception`, so the run stops where it is; the last
    epoch's checkpoint stays and `--resume` goes on from it."""
