"""How an option is declared, once: a dataclass field whose metadata holds its help, bounds and choices.

The stage configs in `config.py` are made of these fields. From them the command line builds its Typer
options (`cli.py`), the configs check every value in `__post_init__` (so the CLI, the UI's jobs and a
Python caller meet the same rules and the same words), and the UI reads flag names and defaults instead of
copying strings. Nothing here imports torch.
"""

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass
from typing import Any

from dualface.errors import DualfaceError


@dataclass(frozen=True)
class Option:
    help: str
    flag: str = ""  # the command line's name, default --field-name
    short: str = ""  # e.g. "-o"
    low: float | None = None  # smallest value allowed
    high: float | None = None  # largest value allowed
    above: float | None = None  # values must be greater than this (e.g. 0 for a learning rate)
    below: float | None = None  # values must be smaller than this (e.g. 1 for a decay)
    choices: Callable[[], Iterable[str]] | None = None  # a table's keys, read when needed
    argument: bool = False  # positional on the command line
    cli: bool = True  # False: a setting for Python callers only
    parse: Callable[[Any], Any] | None = None  # command-line value -> field value (e.g. "20m" -> 1200.0)
    cli_type: Any = None  # the type the command line reads, where it differs from the field's

    def names(self, name: str) -> list[str]:
        """The flags of field `name` on the command line."""
        return [self.flag or "--" + name.replace("_", "-"), *([self.short] if self.short else [])]


def option(default: Any = MISSING, *, factory: Callable[[], Any] | None = None, **declared: Any) -> Any:
    """A config field declared with its option (`Option`'s fields as keywords)."""
    metadata = {"option": Option(**declared)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def declared(config: Any) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of a config class or instance that are declared options, in order."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(config) if "option" in f.metadata]


def find(config: Any, name: str) -> tuple[dataclasses.Field, Option]:
    """The field and option called `name` in a config, or in a config nested in it (train's augment)."""
    for f in dataclasses.fields(config):
        if "option" in f.metadata and f.name == name:
            return f, f.metadata["option"]
        if dataclasses.is_dataclass(f.type):
            with contextlib.suppress(KeyError):
                return find(f.type, name)
    raise KeyError(f"{getattr(config, '__name__', type(config).__name__)} has no option {name!r}")


def flag(config: Any, name: str) -> str:
    """The command-line flag of one field, e.g. flag(TrainConfig, "batch_size") == "--batch-size"."""
    return find(config, name)[1].names(name)[0]


def default(config: Any, name: str) -> Any:
    f = find(config, name)[0]
    return f.default_factory() if f.default_factory is not MISSING else f.default


def choices(config: Any, name: str) -> list[str]:
    opt = find(config, name)[1]
    return list(opt.choices()) if opt.choices else []


def bounds_text(opt: Option) -> str:
    if opt.low is not None and opt.high is not None:
        return f"between {opt.low:g} and {opt.high:g}"
    if opt.above is not None and opt.below is not None:
        return f"above {opt.above:g} and below {opt.below:g}"
    if opt.low is not None and opt.below is not None:
        return f"at least {opt.low:g} and below {opt.below:g}"
    if opt.above == 0 and opt.high is None:
        return "a positive number"
    if opt.low == 0 and opt.high is None and opt.below is None:
        return "zero or more"
    if opt.low is not None:
        return f"at least {opt.low:g}"
    if opt.high is not None:
        return f"at most {opt.high:g}"
    return f"above {opt.above:g}" if opt.above is not None else f"below {opt.below:g}"


def _in_bounds(value: float, opt: Option) -> bool:
    if not math.isfinite(value):  # NaN and infinity fail
        return False
    return (
        (opt.low is None or value >= opt.low)
        and (opt.high is None or value <= opt.high)
        and (opt.above is None or value > opt.above)
        and (opt.below is None or value < opt.below)
    )


def check(config: Any) -> None:
    """Refuse a value out of its bounds or choices, naming the option as the command line spells it."""
    for f, opt in declared(config):
        value = getattr(config, f.name)
        if value is None or isinstance(value, bool):
            continue
        name = opt.names(f.name)[0]
        has_bounds = any(b is not None for b in (opt.low, opt.high, opt.above, opt.below))
        if has_bounds and isinstance(value, int | float) and not _in_bounds(value, opt):
            raise DualfaceError(f"{name} must be {bounds_text(opt)}, not {value}")
        if opt.choices is not None:
            allowed = list(opt.choices())
            for item in value if isinstance(value, list | tuple) else [value]:
                if item not in allowed:
                    raise DualfaceError(f"{name} must be one of {', '.join(allowed)}, not {item!r}")


def argv(config: Any, **values: Any) -> list[str]:
    """Command-line words that set these fields, e.g. argv(TrainConfig, batch_size=16, names=["a", "b"]) ==
    ["--batch-size", "16", "--name", "a", "--name", "b"]: callers (the UI's jobs) name fields, never flags."""
    words: list[str] = []
    for name, value in values.items():
        option_flag = flag(config, name)
        if isinstance(value, bool):
            words.append(option_flag if value else "--no-" + option_flag[2:])
        elif isinstance(value, list | tuple):
            for item in value:
                words += [option_flag, str(item)]
        elif value is not None:
            words += [option_flag, str(value)]
    return words
