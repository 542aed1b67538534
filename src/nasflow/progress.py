"""Progress of long verbs: tqdm's bar on a terminal (it fits the terminal's width, redrawn in place),
plain lines in logs (a job's log must stay readable, so no carriage returns there)."""
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
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm

            # dynamic_ncols: the width is read again at each redraw and the line is cut to it, so the
            # redraws never wrap and stack up; the details go last, where a narrow pane cuts them
            self.bar = tqdm(total=total_epochs, desc=label, file=self.stream, dynamic_ncols=True, leave=False,
                            bar_format="{percentage:3.0f}%|{bar:12}| {elapsed}<{remaining} {desc}")

    def step(self, epoch: int, step: int, steps: int, **fields) -> None:
        """Within an epoch: redraw the bar, or a plain line at most every `line_every` seconds."""
        if self.mode == "none":
            return
        extra = " ".join(f"{k} {v}" for k, v in fields.items())
        if self.bar is not None:
            self.bar.n = epoch - 1 + step / max(1, steps)
            self.bar.set_description_str(f"{self.label} epoch {epoch}/{self.total_epochs} step {step}/{steps} {extra}",
                                         refresh=False)
            self.bar.refresh()
            return
        now = time.perf_counter()
        if now - self.last_line >= self.line_every:
            done = (epoch - 1 + step / max(1, steps)) / self.total_epochs
            elapsed = now - self.started
            left = elapsed / done * (1 - done) if done > 0 else 0.0
            self.last_line = now
            print(f"{self.label} epoch {epoch}/{self.total_epochs} step {step}/{steps} {extra} "
                  f"elapsed {_clock(elapsed)} left ~{_clock(left)}", file=self.stream, flush=True)

    def epoch_done(self, epoch: int, **fields) -> None:
        if self.mode == "none":
            return
        extra = " ".join(f"{k} {v}" for k, v in fields.items())
        line = (f"{self.label} epoch {epoch}/{self.total_epochs} done {extra} "
                f"elapsed {_clock(time.perf_counter() - self.started)}")
        if self.bar is not None:
            self.bar.n = epoch
            self.bar.write(line, file=self.stream)  # above the bar, which is redrawn below it
            return
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
