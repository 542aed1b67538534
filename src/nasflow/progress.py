"""Progress of long verbs: a bar redrawn in place on a terminal, plain lines in logs."""
from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    def __init__(self, label: str, total_epochs: int, mode: str = "auto", stream=None, line_every: float = 30.0):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "lines"
        self.mode, self.label, self.total_epochs = mode, label, total_epochs
        self.line_every, self.last_line = line_every, 0.0
        self.started = time.perf_counter()

    def step(self, epoch: int, step: int, steps: int, **fields) -> None:
        """Within an epoch: redraw the bar, or a plain line at most every `line_every` seconds."""
        if self.mode == "none":
            return
        now = time.perf_counter()
        done = (epoch - 1 + step / max(1, steps)) / self.total_epochs
        elapsed = now - self.started
        left = elapsed / done * (1 - done) if done > 0 else 0.0
        extra = " ".join(f"{k} {v}" for k, v in fields.items())
        text = (f"{self.label} epoch {epoch}/{self.total_epochs} step {step}/{steps} {extra} "
                f"elapsed {_clock(elapsed)} left ~{_clock(left)}")
        if self.mode == "bar":
            width = 24
            filled = int(width * done)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K")
            self.stream.flush()
        elif now - self.last_line >= self.line_every:
            self.last_line = now
            print(text, file=self.stream, flush=True)

    def epoch_done(self, epoch: int, **fields) -> None:
        if self.mode == "none":
            return
        if self.mode == "bar":
            self.stream.write("\r\033[K")
        extra = " ".join(f"{k} {v}" for k, v in fields.items())
        print(f"{self.label} epoch {epoch}/{self.total_epochs} done {extra} "
              f"elapsed {_clock(time.perf_counter() - self.started)}", file=self.stream, flush=True)
