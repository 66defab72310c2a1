"""One command-line grammar for every softpool tool, and what their exit statuses mean.

Every tool reads the same shape of command line::

    softpool-predict clip.mp4 checkpoint=best.pt topk=3        # positional arguments + key=value
    softpool-bench op device=cpu repeats=3
    softpool-train model=slowfast_r50 trainer.epochs=2          # Hydra overrides are key=value too

- an option is ``key=value`` (a leading ``+`` is allowed, as in Hydra); ``--help``/``-h`` prints the
  usage and ``--version`` the version, both exit 0;
- a key given twice is an error (never a silent last-wins), and so is an unknown key (the message
  lists the known ones and the closest match) or a ``--flag`` (options are ``key=value``; a flag of
  a tool's former argparse command line is answered with its new spelling, ``Command.legacy_flags``);
- a value is checked by its option's type (the converters below); ``null``/``none`` means "not set"
  where the option allows it; lists are ``a,b`` or ``[a,b]``;
- anything else is a positional argument (a video, a folder) for the tools that take them.

Exit statuses, the same for every tool:

- ``0`` (:data:`EXIT_OK`): done;
- ``1`` (:data:`EXIT_FAILURE`): the work failed (out of memory, non-finite loss, an unreadable
  checkpoint, too many unreadable videos, a file that cannot be written); one line on stderr, the
  traceback in the run's log file when there is one;
- ``2`` (:data:`EXIT_USAGE`): the command line or the configuration is wrong; one line on stderr
  naming the key or file and what would be accepted, and nothing was written;
- ``130`` (:data:`EXIT_INTERRUPTED`): Ctrl-C; ``128 + N``: stopped by signal ``N`` (training writes
  ``last.pt`` first).

The Hydra-based tools (``softpool-train``, ``softpool-eval``, ``softpool-demo``) keep Hydra's override
syntax (``group=option``, ``+key=value``, ``~key``, ``-m`` sweeps, ``--cfg job``, ``--config-dir``);
:func:`check_overrides` gives them the same rules for ``--help``, ``--version``, repeated keys and
flags, and :func:`hydra_error_message` turns Hydra's multi-line errors into one line.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Arguments",
    "Command",
    "Failure",
    "Option",
    "Positionals",
    "UsageError",
    "boolean",
    "check_overrides",
    "choice",
    "device",
    "did_you_mean",
    "error_summary",
    "hydra_error_message",
    "integer",
    "listing",
    "number",
    "path",
    "print_error",
    "report_unexpected",
    "run",
    "text",
    "version_text",
    "writable_file",
    "writable_folder",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

HELP_FLAGS = ("-h", "--help")
VERSION_FLAG = "--version"
NULL_WORDS = ("null", "none", "~")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


class UsageError(ValueError):
    """The command line or the configuration asks for something impossible (exit status 2).

    The message names the key or file and says what would be accepted; it is printed as one line.
    """


class Failure(RuntimeError):
    """The command was valid but the work failed (exit status 1); printed as one line."""


# ---------------------------------------------------------------------------------------------
# Messages


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


_WORKER_WRAPPER = re.compile(r"^Caught (\w+) in DataLoader worker process \d+\.")


def error_summary(error: BaseException) -> str:
    """One line describing ``error``.

    Errors re-raised by a DataLoader from a worker process carry the worker's whole traceback in
    their message (``Caught X in DataLoader worker process 0. Original Traceback ...``); the line
    is then the worker's own message, without the traceback.
    """
    message = str(error)
    wrapper = _WORKER_WRAPPER.match(message)
    if wrapper:
        name = wrapper.group(1)
        lines = message.rstrip().splitlines()
        for index in range(len(lines) - 1, 0, -1):
            head = lines[index].split(": ", 1)[0]
            if not lines[index][:1].isspace() and (head == name or head.endswith(f".{name}")):
                message = "\n".join(lines[index:]).split(": ", 1)[1] if ": " in lines[index] else name
                break
    return one_line(message) or type(error).__name__


def print_error(prog: str, message: Any) -> None:
    """``PROG: error: MESSAGE`` on stderr, on one line."""
    text = error_summary(message) if isinstance(message, BaseException) else one_line(message)
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)


def report_unexpected(prog: str, error: BaseException, log_file: Path | None = None) -> int:
    """A bug or an unforeseen failure: one line on stderr, the traceback in ``log_file`` (or in a
    file of the temporary directory when the run has no log yet). Returns :data:`EXIT_FAILURE`."""
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    where = None
    try:
        if log_file is not None and log_file.parent.is_dir():
            with log_file.open("a", encoding="utf-8") as handle:
                handle.write(details)
            where = log_file
        else:
            fd, name = tempfile.mkstemp(prefix=f"{prog}-traceback-", suffix=".log")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(details)
            where = Path(name)
    except OSError:
        pass
    suffix = f" (traceback in {where})" if where is not None else ""
    print_error(prog, f"{type(error).__name__}: {error_summary(error)}{suffix}")
    return EXIT_FAILURE


def version_text(prog: str) -> str:
    """``"PROG VERSION"``, the version being ``softpool_video.__version__``."""
    from softpool_video._version import __version__

    return f"{prog} {__version__}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the closest of ``choices`` to ``word``, or ``""``."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


# ---------------------------------------------------------------------------------------------
# Value types: ``convert(name, text) -> value``, raising UsageError that names the option.

Converter = Callable[[str, str], Any]


def _is_null(text: str) -> bool:
    return text.strip().lower() in NULL_WORDS or text.strip() == ""


def _reject(name: str, accepted: str, text: str) -> UsageError:
    return UsageError(f"{name} must be {accepted}, got {text!r}")


def integer(minimum: int | None = None, maximum: int | None = None, optional: bool = False) -> Converter:
    """An integer in ``[minimum, maximum]`` (``null`` too when ``optional``)."""
    accepted = "an integer"
    if minimum is not None and maximum is not None:
        accepted += f" in [{minimum}, {maximum}]"
    elif minimum is not None:
        accepted += f" >= {minimum}"
    elif maximum is not None:
        accepted += f" <= {maximum}"
    accepted += " or null" if optional else ""

    def convert(name: str, text: str) -> Any:
        if optional and _is_null(text):
            return None
        try:
            value = int(text.strip())
        except ValueError:
            raise _reject(name, accepted, text) from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise _reject(name, accepted, text)
        return value

    return convert


def number(minimum: float | None = None, positive: bool = False, optional: bool = False) -> Converter:
    """A finite number (``> 0`` when ``positive``, ``>= minimum``; ``null`` too when ``optional``)."""
    accepted = "a positive number" if positive else "a number"
    if minimum is not None:
        accepted += f" >= {minimum}"
    accepted += " or null" if optional else ""

    def convert(name: str, text: str) -> Any:
        if optional and _is_null(text):
            return None
        try:
            value = float(text.strip())
        except ValueError:
            raise _reject(name, accepted, text) from None
        if (
            not math.isfinite(value)
            or (positive and not value > 0)
            or (minimum is not None and value < minimum)
        ):
            raise _reject(name, accepted, text)
        return value

    return convert


def choice(choices: Sequence[str], optional: bool = False) -> Converter:
    """One of ``choices`` (exact, case-sensitive)."""

    def convert(name: str, text: str) -> Any:
        if optional and _is_null(text):
            return None
        value = text.strip()
        if value not in choices:
            raise UsageError(
                f"{name} must be one of {', '.join(choices)}, got {text!r}{did_you_mean(value, choices)}"
            )
        return value

    return convert


def boolean() -> Converter:
    """``true``/``false`` (also yes/no, on/off, 1/0)."""

    def convert(name: str, text: str) -> bool:
        word = text.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise _reject(name, "true or false", text)

    return convert


def text(optional: bool = True) -> Converter:
    """Any non-empty string (``null`` -> ``None`` when ``optional``)."""

    def convert(name: str, value: str) -> Any:
        if _is_null(value):
            if optional:
                return None
            raise UsageError(f"{name} needs a value, got {value!r}")
        return value.strip()

    return convert


def path(suffixes: Sequence[str] = (), optional: bool = True) -> Converter:
    """A file or folder name (not checked for existence), ending in one of ``suffixes`` if given."""

    def convert(name: str, value: str) -> Any:
        if _is_null(value):
            if optional:
                return None
            raise UsageError(f"{name}=PATH needs a path, got {value!r}")
        value = value.strip()
        if suffixes and Path(value).suffix.lower() not in suffixes:
            raise UsageError(f"{name}={value}: the file name must end in {' or '.join(suffixes)}")
        return value

    return convert


def listing(item: Converter | None = None, choices: Sequence[str] | None = None) -> Converter:
    """A non-empty list ``a,b`` or ``[a,b]``, each item checked by ``item`` (or among ``choices``)."""

    def convert(name: str, value: str) -> list[Any]:
        body = value.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        items = [part.strip().strip("'\"") for part in body.split(",") if part.strip()]
        accepted = f"a list like {name}=[a,b]" + (f" of {', '.join(choices)}" if choices else "")
        if not items or any(bracket in body for bracket in "[]"):
            raise _reject(name, accepted, value)
        if choices is not None:
            unknown = [part for part in items if part not in choices]
            if unknown:
                raise UsageError(
                    f"{name}: {', '.join(map(repr, unknown))} not among {', '.join(choices)} (got {value!r})"
                )
        if item is not None:
            items = [item(name, part) for part in items]
        return items

    return convert


def device() -> Converter:
    """``auto``, ``cpu``, ``cuda`` (or ``gpu``) or ``cuda:N``, checked against this machine's GPUs."""

    def convert(name: str, value: str) -> str:
        from softpool_video.devices import resolve_device

        try:
            resolve_device(value, option=name)
        except ValueError as error:
            raise UsageError(str(error)) from None
        return value.strip().lower()

    return convert


def writable_folder(option: str, folder: str | os.PathLike) -> Path:
    """``folder`` if it is, or can be created as, a writable folder; else :class:`UsageError` naming
    ``option``. Creates nothing: checked before any work so a bad output place writes nothing."""
    target = Path(folder).expanduser()
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == target else f"is under {probe}, which is a file"
        raise UsageError(f"{option}={folder}: {where}, not a folder; give a folder to write into")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{option}={folder}: {probe} is not writable; give a folder you can write into")
    return target


def writable_file(option: str, file: str | os.PathLike) -> Path:
    """``file`` if it can be written (its folder is, or can be created as, a writable folder, and it
    is not itself a folder); else :class:`UsageError` naming ``option``. Creates nothing."""
    target = Path(file).expanduser()
    if target.is_dir():
        raise UsageError(f"{option}={file}: is a folder; give a file name")
    try:
        writable_folder(option, target.parent)
    except UsageError as error:  # say which file cannot be written, then why
        reason = str(error).split(": ", 1)[-1]
        raise UsageError(f"{option}={file}: cannot write it: {target.parent} {reason}") from None
    return target


# ---------------------------------------------------------------------------------------------
# Commands


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option.

    Attributes:
        default: the value when the option is not given (already converted).
        convert: a converter above.
        help: one line for ``--help``; a ``[...]`` in it replaces the shown default.
        applies_when: ``(other option, allowed values)``: the option may only be given when the other
            option has one of these values (``("mode", ("timeline",))``).
    """

    default: Any
    convert: Converter
    help: str
    applies_when: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Positionals:
    """The positional arguments a command takes: ``name`` for the usage line, how many."""

    name: str
    minimum: int = 0
    maximum: int | None = None  # None: any number
    help: str = ""


@dataclass
class Arguments:
    """A parsed command line: converted option values (defaults filled in), which were given, and
    the positional arguments in order."""

    values: dict[str, Any]
    given: dict[str, str] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None


def _format_default(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


@dataclass
class Command:
    """A tool's command line: its options, positional arguments and help text.

    ``parse`` implements the grammar described in the module docstring; ``run`` (the module
    function) adds ``--help``, ``--version`` and the exit statuses.
    """

    prog: str
    summary: str
    options: Mapping[str, Option]
    positionals: Positionals | None = None
    usage_line: str = ""
    epilog: str = ""
    #: Flags of the tool's former ``--flag value`` command line and their ``key=value`` spelling
    #: (``{"--short-side": "short_side=N"}``): such a flag is refused with a line giving the new
    #: spelling, so old scripts fail clearly instead of being half understood.
    legacy_flags: Mapping[str, str] = field(default_factory=dict)

    def usage(self) -> str:
        line = self.usage_line or (
            (f"{self.positionals.name} ... " if self.positionals else "") + "[key=value ...]"
        )
        lines = [f"usage: {self.prog} {line}", "", self.summary.strip(), "", "options [default]:"]
        width = max((len(name) for name in self.options), default=0) + 3
        for name, option in self.options.items():
            shown = (
                ""
                if "[" in option.help or option.default is None
                else f" [{_format_default(option.default)}]"
            )
            condition = ""
            if option.applies_when is not None:
                other, allowed = option.applies_when
                condition = f" ({other}={'|'.join(allowed)})"
            lines.append(f"  {name + '=':<{width}}{option.help}{condition}{shown}")
        flag_width = max(width + 2, len("  --help, -h") + 2)  # short option names must not glue on
        lines += [
            "  --help, -h".ljust(flag_width) + "this help",
            "  --version".ljust(flag_width) + "the version",
        ]
        if self.epilog:
            lines += ["", self.epilog.strip()]
        lines += [
            "",
            "exit status: 0 done, 1 the work failed, 2 a bad argument (nothing written), 130 Ctrl-C",
        ]
        return "\n".join(lines)

    def parse(self, argv: Sequence[str]) -> Arguments:
        """``["a.mp4", "topk=3"]`` -> :class:`Arguments`; raises :class:`UsageError`."""
        given: dict[str, str] = {}
        positionals: list[str] = []
        for arg in argv:
            key, equals, value = arg.partition("=")
            bare = key.strip().lstrip("+")
            if arg.startswith("-") and not os.path.exists(arg):
                if key.strip() in self.legacy_flags:
                    raise UsageError(
                        f"{key.strip()!r} is the old spelling: use {self.legacy_flags[key.strip()]} "
                        f"(options are key=value; see {self.prog} --help)"
                    )
                flag = bare.lstrip("-")
                if flag in self.options:
                    example = f"{flag}={value}" if equals else f"{flag}=VALUE"
                    raise UsageError(f"{arg!r}: options are key=value, write {example}")
                raise UsageError(f"unknown flag {arg!r}: options are key=value (see {self.prog} --help)")
            if equals and bare in self.options:
                if bare in given:
                    raise UsageError(f"{bare} is given twice ({bare}={given[bare]} and {arg})")
                given[bare] = value
                continue
            if equals and not (self.positionals and os.path.exists(arg)):
                if not bare:
                    raise UsageError(f"{arg!r}: an option needs a name, as in key=value")
                raise UsageError(
                    f"unknown option {bare!r} in {arg!r}{did_you_mean(bare, self.options)}; "
                    f"known: {', '.join(self.options)}"
                )
            if not equals and bare in self.options and not os.path.exists(arg):
                raise UsageError(f"{arg!r} needs a value after '=': write {bare}=VALUE (not {bare} VALUE)")
            if self.positionals is None:
                raise UsageError(
                    f"unexpected argument {arg!r}: options are key=value (see {self.prog} --help)"
                )
            positionals.append(arg)
        values = {name: option.default for name, option in self.options.items()}
        for name, raw in given.items():
            values[name] = self.options[name].convert(name, raw)
        for name in given:
            condition = self.options[name].applies_when
            if condition is not None and values[condition[0]] not in condition[1]:
                raise UsageError(f"{name} only applies to {condition[0]}={'|'.join(condition[1])}")
        if self.positionals is not None:
            spec = self.positionals
            if len(positionals) < spec.minimum:
                raise UsageError(f"no {spec.name} given (see {self.prog} --help)")
            if spec.maximum is not None and len(positionals) > spec.maximum:
                raise UsageError(
                    f"at most {spec.maximum} {spec.name} expected, got {len(positionals)}: "
                    f"{', '.join(map(repr, positionals))}"
                )
        return Arguments(values, given, positionals)


def wants_help(argv: Sequence[str]) -> bool:
    return any(arg in HELP_FLAGS for arg in argv)


def wants_version(argv: Sequence[str]) -> bool:
    return VERSION_FLAG in argv


def _print_to_pipe(text: str) -> None:
    """Print ``text``; a reader that stops early (``--help | head``) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would report the closed pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run(
    command: Command,
    main: Callable[[Arguments], int | None],
    argv: Sequence[str] | None = None,
    failures: tuple[type[BaseException], ...] = (),
    usage_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) with ``command`` and call ``main(arguments)``.

    ``--help`` and ``--version`` are answered here. :class:`UsageError` (and ``usage_errors``) exit 2,
    :class:`Failure` (and ``failures``) exit 1, each with one line on stderr; Ctrl-C exits 130; any
    other exception is reported by :func:`report_unexpected`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        _print_to_pipe(command.usage())
        return EXIT_OK
    if wants_version(argv):
        _print_to_pipe(version_text(command.prog))
        return EXIT_OK
    try:
        arguments = command.parse(argv)
        return int(main(arguments) or EXIT_OK)
    except (UsageError, *usage_errors) as error:
        print_error(command.prog, error)
        return EXIT_USAGE
    except (Failure, *failures) as error:
        print_error(command.prog, error)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print_error(command.prog, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - a bug: one line, the traceback in a file
        return report_unexpected(command.prog, error)


# ---------------------------------------------------------------------------------------------
# Hydra-style command lines (softpool-train, softpool-eval, softpool-demo)

#: Hydra's own flags that take a value (``--cfg job``) and those that do not.
HYDRA_VALUE_FLAGS = {
    "--cfg": "-c",
    "--package": "-p",
    "--config-path": "-cp",
    "--config-name": "-cn",
    "--config-dir": "-cd",
    "--experimental-rerun": None,
}
HYDRA_PLAIN_FLAGS = {
    "--hydra-help": None,
    "--resolve": None,
    "--run": "-r",
    "--multirun": "-m",
    "--info": "-i",
    "--shell-completion": "-sc",
}
#: ``device=X`` is the same option as in the other tools; in the training configs it is
#: ``trainer.accelerator``.
OVERRIDE_ALIASES = {"device": "trainer.accelerator"}


def override_key(override: str) -> str:
    """The key an override sets: ``++trainer.epochs=3`` -> ``trainer.epochs``, ``~logger`` -> ``logger``,
    ``model@x=y`` -> ``model@x``."""
    key = override.split("=", 1)[0].strip()
    return key.lstrip("+~")


def check_overrides(prog: str, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Check a Hydra command line against the common rules; returns ``(flags, overrides)``.

    Hydra's flags are kept (``--cfg job``, ``-m``, ``--config-dir DIR``, ...); ``device=X`` becomes
    ``trainer.accelerator=X``. Raises :class:`UsageError` for an unknown flag, a flag without its
    value, a key given twice, or an argument that is not an override.
    """
    flags: list[str] = []
    overrides: list[str] = []
    seen: dict[str, str] = {}
    value_flags = {**HYDRA_VALUE_FLAGS, **{short: long for long, short in HYDRA_VALUE_FLAGS.items() if short}}
    plain_flags = {**HYDRA_PLAIN_FLAGS, **{short: long for long, short in HYDRA_PLAIN_FLAGS.items() if short}}
    args = list(argv)
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg.startswith("-"):
            name, equals, _ = arg.partition("=")
            if name in value_flags:
                flags.append(arg)
                value = arg.partition("=")[2]
                if not equals:
                    if index >= len(args) or args[index].startswith("-") or "=" in args[index]:
                        example = f"{name} job" if name in ("--cfg", "-c") else f"{name} VALUE"
                        raise UsageError(f"{name} needs a value (e.g. {example})")
                    value = args[index]
                    flags.append(value)
                    index += 1
                if name in ("--cfg", "-c") and value not in ("job", "hydra", "all"):
                    raise UsageError(f"{name} {value}: must be one of job, hydra, all")
                continue
            if name in plain_flags:
                flags.append(arg)
                if (
                    name in ("--info", "-i")
                    and index < len(args)
                    and "=" not in args[index]
                    and not args[index].startswith("-")
                ):
                    flags.append(args[index])  # --info [searchpath|defaults|...]
                    index += 1
                continue
            known = sorted(set(HYDRA_VALUE_FLAGS) | set(HYDRA_PLAIN_FLAGS) | {"--help", "--version"})
            raise UsageError(
                f"unknown flag {arg!r}: settings are key=value overrides (e.g. trainer.epochs=3); "
                f"flags: {', '.join(known)}{did_you_mean(name, known)}"
            )
        if "=" not in arg and not arg.startswith("~"):
            raise UsageError(
                f"{arg!r} is not an override: write key=value (e.g. model=slowfast_r50, trainer.epochs=3)"
            )
        key = override_key(arg)
        if key in OVERRIDE_ALIASES:
            target = OVERRIDE_ALIASES[key]
            arg = f"{target}={arg.split('=', 1)[1]}"
            key = target
        if key in seen:
            raise UsageError(f"{key} is given twice ({seen[key]} and {arg})")
        seen[key] = arg
        overrides.append(arg)
    return flags, overrides


_HYDRA_FOOTERS = (
    "Config search path",
    "Set the environment variable HYDRA_FULL_ERROR",
    "See https://hydra.cc",
)


def _strip_hydra_text(message: str) -> str:
    kept = []
    for line in str(message).splitlines():
        if any(line.strip().startswith(footer) for footer in _HYDRA_FOOTERS):
            break
        kept.append(line)
    return one_line("\n".join(kept))


def hydra_error_message(
    error: BaseException,
    suggest_key: Callable[[str], str] | None = None,
    group_options: Callable[[str], list[str]] | None = None,
) -> str:
    """One line for an error raised while Hydra composes a configuration.

    Unknown config group options list the available ones (``group_options(group)`` fills them in
    where Hydra does not); unknown keys name the override (``suggest_key(key)`` adds a "did you
    mean"); bad override syntax and merge errors name the override.
    """
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(error, MissingConfigException):
        options = list(error.options or [])
        missing = str(error.missing_cfg_file or "")
        if "/" in missing:
            group, name = missing.rsplit("/", 1)
            if not options and group_options is not None:
                options = group_options(group)
            if options:
                return (
                    f"{group}={name}: no such {group} config{did_you_mean(name, options)}; "
                    f"choose from: {', '.join(options)}"
                )
        if missing:
            return f"no config named {missing!r} in the search path ({_strip_hydra_text(error)})"
        return _strip_hydra_text(error)
    if isinstance(error, OverrideParseException):
        return (
            f"{error.override!r} is not a valid override ({_strip_hydra_text(error.message)}); write "
            "key=value, and quote values that hold special characters: key='a=b'"
        )
    message = _strip_hydra_text(error)
    cause = error.__cause__
    match = re.match(r"Could not override '([^']+)'\. To append to your config use \+(\S+)", message)
    if match:
        key, override = match.groups()
        hint = suggest_key(key) if suggest_key is not None else ""
        return f"{override}: the config has no key {key!r}{hint}; add a new key with +{override}"
    match = re.match(r"Could not append to config\. An item is already at '([^']+)'", message)
    if match:
        key = match.group(1)
        return f"+{key}: {key} is already set; write {key}=VALUE (or ++{key}=VALUE)"
    if cause is not None and message.startswith("Error merging override"):
        return f"{message[len('Error merging override ') :]}: {_strip_hydra_text(str(cause).splitlines()[0])}"
    if cause is not None and not message:
        return _strip_hydra_text(str(cause).splitlines()[0])
    return message or type(error).__name__
