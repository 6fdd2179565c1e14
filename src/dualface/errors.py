"""The one exception type whose message is meant for the user."""


class DualfaceError(Exception):
    """A failure the user can act on. The CLI prints its message on one line and exits non-zero."""


class DamagedMediaError(DualfaceError):
    """Raised after the last frame of a video some of whose packets could not be decoded: every frame that
    could be was already delivered, so the caller keeps its work and still reports the damage."""


class TooLargeError(DualfaceError):
    """An input bigger than dualface will decode (an image's pixels): refused before it takes the memory."""


class CorruptCheckpointError(DualfaceError):
    """A checkpoint file that cannot be trusted (cut short, its seal broken, gone): `--resume` sets it aside
    and goes on from the one before, where a checkpoint of the wrong kind or version stops the run."""
