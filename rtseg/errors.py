"""Errors that the CLI turns into a one-line message instead of a stack trace."""

from __future__ import annotations


class RtsegError(Exception):
    """Base class: a problem with the user's input (file, option, config), not a bug."""

    def short_message(self) -> str:
        # DataLoader workers re-raise our errors with the worker traceback folded into the
        # message; the user only needs the last line, which is our original text.
        text = str(self).strip()
        if "Original Traceback" in text:
            last = text.splitlines()[-1]
            # "DatasetError: ..." or "rtseg.errors.DatasetError: ..." (newer torch qualifies it)
            head, sep, rest = last.partition(": ")
            text = rest if sep and head.split(".")[-1] == type(self).__name__ else last
        # One line, always: the CLI prints "rtseg COMMAND: error: ..." and nothing else.
        return " ".join(part.strip() for part in text.splitlines() if part.strip())


class DatasetError(RtsegError, ValueError):
    """A dataset folder, image or label is missing, unreadable or inconsistent."""


class ConfigError(RtsegError, ValueError):
    """A config file or override names an unknown key or a value of the wrong type."""


class CheckpointError(RtsegError, ValueError):
    """A weights file is missing, corrupt or not an rtseg checkpoint."""


class WeightsUnavailableError(RtsegError, RuntimeError):
    """Pretrained weights could not be downloaded (offline) and no local file was given."""


class TrainingDivergedError(RtsegError, FloatingPointError):
    """The training loss became NaN or infinite: the run stops; last.pt keeps the last epoch."""
