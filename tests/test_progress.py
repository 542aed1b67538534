"""The progress display: tqdm's bar fits the terminal it draws on; logs get plain lines."""
import fcntl
import io
import os
import pty
import re
import struct
import termios

from nasflow.progress import Progress

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _drive(progress, epochs=2, steps=5):
    for e in range(1, epochs + 1):
        for k in range(1, steps + 1):
            progress.step(e, k, steps, alive=196, loss="2.303")
        progress.epoch_done(e, phase="search", alive=196, val_error="90.0%", seconds="1.3")
    progress.close()


def test_the_bar_fits_an_80_column_terminal():
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    with os.fdopen(slave, "w") as tty:
        _drive(Progress("search entranas-dst s0 with a long label", 50, "auto", stream=tty))
    os.set_blocking(master, False)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    text = out.decode()
    frames = [ANSI.sub("", f) for f in re.split(r"\r|\n", text)]
    bars = [f for f in frames if "%|" in f]
    assert len(bars) >= 10  # redrawn at every step
    assert max(len(f) for f in bars) < 80, max(bars, key=len)
    done = [f for f in frames if " done " in f]
    assert len(done) == 2 and "val_error 90.0%" in done[-1]  # the epoch lines are kept whole


def test_logs_get_plain_lines_without_carriage_returns():
    log = io.StringIO()  # not a terminal: a job's log file
    _drive(Progress("train DARTS_V2 cifar10 s0", 2, "auto", stream=log, line_every=0.0))
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert sum(" done " in line for line in lines) == 2 and sum(" step " in line for line in lines) == 10
