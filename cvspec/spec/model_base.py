"""Shared pieces of the spec models: the strict base model, constrained strings, bounds."""

import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

if TYPE_CHECKING:
    from pydantic.json_schema import JsonSchemaValue


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors, values are immutable, and scalars
    are taken as YAML typed them: a bool only from true/false, an integer not from a bool, a
    float or a string, a number not from a bool or a string (an integer is a number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, strict=True)


class Pattern:
    """Annotated[str, Pattern(...)]: the str must fully match `regex`, else "must be <expected>".

    `test`, when given, decides instead of `regex` in Python: for a rule Python's re cannot
    say as the schema's ECMAScript regex says it (Unicode classes such as \\p{L})."""

    __slots__ = ("expected", "hint", "max_length", "regex", "test")

    def __init__(
        self,
        regex: str,
        expected: str,
        max_length: int = 200,
        test: Callable[[str], bool] | None = None,
        hint: Callable[[str], str | None] | None = None,
    ) -> None:
        self.regex, self.expected, self.max_length, self.test = regex, expected, max_length, test
        self.hint = hint  # the help line for a value that does not match, if it has one

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """A str schema with a length limit followed by the pattern check (compiled on first
        use, by re's own cache: a spec uses few of these patterns)."""
        regex, expected, hint = self.regex, self.expected, self.hint
        test = self.test or (lambda value: re.fullmatch(regex, value) is not None)

        def check(value: str) -> str:
            if not test(value):
                help_line = hint(value) if hint is not None else None
                raise PydanticCustomError(
                    "string_pattern_mismatch",
                    "must be {expected}",
                    {"expected": expected, **({"hint": help_line} if help_line else {})},
                )
            return value

        return core_schema.no_info_after_validator_function(
            check, core_schema.str_schema(max_length=self.max_length)
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> "JsonSchemaValue":
        """The str JSON Schema plus the pattern, so editors check it too."""
        return {**handler(schema), "pattern": self.regex}


ProjectName = Annotated[
    str,
    Pattern(
        r"^[a-z][a-z0-9_-]{0,62}$",
        "a lowercase name of letters, digits, '_' or '-' that starts with a letter (at most 63)",
        63,
    ),
]
Identifier = Annotated[str, Pattern(r"^[a-z][a-z0-9_]*$", "a snake_case name like 'error_rate'")]
PascalName = Annotated[str, Pattern(r"^[A-Z][A-Za-z0-9]*$", "a PascalCase name like 'InputDrift'")]


def is_class_name(value: str) -> bool:
    """Letters and digits of any script (combining marks too: a macOS folder name is
    decomposed, 'cafe' + U+0301), inner spaces, '_', '.' and '-'; a letter or digit first."""
    if not value or value[-1] == " " or unicodedata.category(value[0])[0] not in "LN":
        return False
    return all(c in " _.-" or unicodedata.category(c)[0] in "LMN" for c in value)


ClassName = Annotated[
    str,
    Pattern(
        r"^[\p{L}\p{N}](?:[\p{L}\p{M}\p{N} _.-]*[\p{L}\p{M}\p{N}_.-])?$",
        "a class name of letters, digits, spaces, '_', '.' or '-' that starts with a letter or "
        "digit and does not end with a space (at most 100 characters)",
        100,
        is_class_name,
    ),
]
"""A class (a folder name with classes: auto), e.g. 'cat', 'golden retriever' or 'café'."""
Owner = Annotated[
    str,
    Pattern(
        r"^(@[A-Za-z0-9][A-Za-z0-9-]{0,38}(/[A-Za-z0-9][A-Za-z0-9_.-]*)?"
        r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})$",
        "'@org/team', '@user' or an email address",
    ),
]
SlackChannel = Annotated[str, Pattern(r"^#[a-z0-9][a-z0-9_-]*$", "a Slack channel like '#cv'", 81)]
JiraKey = Annotated[str, Pattern(r"^[A-Z][A-Z0-9]+$", "a Jira project key like 'CV'", 20)]
JiraTransition = Annotated[
    str,
    Pattern(
        r"^[^\s{}]([^{}\r\n]*[^\s{}])?$",
        "a Jira workflow transition like 'Done' or 'Close Issue'",
        60,
    ),
]
SecretName = Annotated[str, Pattern(r"^[A-Z][A-Z0-9_]*$", "an UPPER_SNAKE_CASE secret name")]
Duration = Annotated[
    str,
    Pattern(
        r"^([0-9]+(ms|s|m|h|d|w|y))+$", "a Prometheus duration like '30s', '15m' or '1h30m'", 40
    ),
]
PathStr = Annotated[
    str, Pattern(r"^[^\x00-\x1f\x7f]+$", "a non-empty path without control characters", 4096)
]
"""A file or directory path, relative to the spec file unless absolute."""
DataPattern = Annotated[
    str,
    Pattern(
        r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[^\x00-\x1f\x7f]+$",
        "a path or pattern inside data.path, like '3/0003.png' or 'raw/*.tif'",
        4096,
    ),
]
"""A file path or shell-style pattern relative to data.path (`*` also crosses folders)."""
Text = Annotated[
    str, Pattern(r"^[^\x00-\x08\x0b-\x1f\x7f]*$", "text without control characters", 2000)
]
Label = Annotated[
    str,
    Pattern(
        r"^[A-Za-z0-9][A-Za-z0-9_./:-]*$", "one token of letters, digits, '_', '.', '/', ':' or '-'"
    ),
]
"""A runner label, branch or similar token that is safe to write into generated files."""
Probability = Annotated[float, Field(ge=0, le=1)]


def check_bounds(low: float | None, high: float | None) -> None:
    """Raise ValueError unless at least one of the two bounds is set."""
    if low is None and high is None:
        raise ValueError("set at least one of 'min' or 'max'")


class Gate(StrictModel):
    """A bound on a metric: the build, CI, alert and dashboard all enforce it."""

    min: float | None = Field(None, description="Lowest acceptable value (inclusive).")
    max: float | None = Field(None, description="Highest acceptable value (inclusive).")

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        check_bounds(self.min, self.max)
        return self
