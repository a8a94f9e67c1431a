"""User-facing errors: every one carries where it happened and maps to an exit code."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from cvspec.spec.load import RawSpec


class Origin(NamedTuple):
    """Where a value came from: a file position, a --set flag, a profile, or a default."""

    kind: str  # "file" | "set" | "profile" | "default"
    file: str | None = None
    line: int = 0  # 1-based; 0 when unknown
    col: int = 0  # 1-based; 0 when unknown
    detail: str = ""  # the flag as typed (`--set a=b`), or the profile name

    def describe(self) -> str:
        """Provenance label: `file:line`, `--set x=y`, `profile ci (file:line)` or `default`."""
        if self.kind == "default":
            return "default"
        if self.kind == "set":
            return self.detail
        where = f"{self.file}:{self.line}" if self.file else "?"
        if self.kind == "profile":
            return f"profile {self.detail} ({where})"
        return where


DEFAULT = Origin("default")


class Diagnostic(NamedTuple):
    """One problem found in a spec, with its location and an optional hint."""

    code: str
    message: str
    origin: Origin | None = None
    help: str | None = None
    span: int = 1  # how many characters the caret underlines
    severity: str = "error"  # "error" | "warning" (a warning never fails a command)


class CvspecError(Exception):
    """Base of every error a user can cause; the CLI maps it to `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.diagnostics = tuple(diagnostics)


class SpecError(CvspecError):
    """The spec (or its includes, profile or --set flags) is invalid."""

    exit_code = 2

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        diags = tuple(diagnostics)
        noun = "error" if len(diags) == 1 else "errors"
        super().__init__(f"{len(diags)} {noun}", diags)


class SpecValueError(CvspecError):
    """A spec value that cannot work here, found only at run time (a folder that is not
    there): `cvspec run` reports it at the value's line in the spec (see `located`)."""

    exit_code = 2

    def __init__(
        self,
        key: tuple[str | int, ...],
        message: str,
        hint: str | None = None,
        code: str = "spec-value",
    ) -> None:
        self.key, self.hint, self.code, self._message = key, hint, code, message
        self.detail = f"{_dotted(key)}: {message}"
        super().__init__(f"{self.detail}; {hint}" if hint else self.detail)  # unlocated: all

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by its own arguments: a sweep point that fails in a joblib worker process
        reaches the parent as this error (Exception's default pickling would call __init__
        with the formatted message alone)."""
        return (type(self), (self.key, self._message, self.hint, self.code))

    def located(self, raw: RawSpec) -> CvspecError:
        """The same error as a diagnostic at the value's origin, the caret under the whole value
        as validate's are (itself when no origin is known)."""
        from cvspec.spec.locate import span

        origin = raw.values.get(self.key)
        if origin is None:
            return self
        width = span(raw, self.key, origin)
        return CvspecError("", [Diagnostic(self.code, self.detail, origin, self.hint, width)])


def _dotted(key: tuple[str | int, ...]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in key).lstrip(".")


class Interrupted(CvspecError):
    """Ctrl-C (SIGINT) stopped a command; the message says how to go on."""

    exit_code = 130


class UsageError(CvspecError):
    """A command was called the wrong way (bad flag value, missing file)."""

    exit_code = 2


class CheckFailed(CvspecError):
    """A check did not pass: drift, tamper, refused overwrite, failed gate."""

    exit_code = 1


class PluginError(CvspecError):
    """A generator plugin could not be loaded or misbehaved."""

    exit_code = 2
