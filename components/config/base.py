"""The base of every config model: camelCase keys, unknown keys refused, and rules reported together."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails

from components.config.fields import ERROR_TYPE, problem

#: (location relative to the model or field, message after the key path)
Problem = tuple[tuple[str | int, ...], str]


def _problem_details(found: Iterable[Problem]) -> list[InitErrorDetails]:
    return [InitErrorDetails(type=problem(msg), loc=loc, input=None) for loc, msg in found]


def problems(found: Iterable[Problem], title: str = "config") -> ValidationError:
    """One ValidationError carrying several problems (raised from inside a validator)."""
    return ValidationError.from_exception_data(title, _problem_details(found))


def _details(e: ValidationError) -> list[InitErrorDetails]:
    out: list[InitErrorDetails] = []
    for err in e.errors():
        kind = problem(err["msg"]) if err["type"] == ERROR_TYPE else err["type"]
        d = InitErrorDetails(type=kind, loc=err["loc"], input=err["input"])
        if "ctx" in err and err["type"] != ERROR_TYPE:
            d["ctx"] = err["ctx"]
        out.append(d)
    return out


def beside(rule: Callable[[Any], Iterable[Problem]]) -> WrapValidator:
    """A rule across a list's or mapping's items, reported beside the items' own errors.

    pydantic runs no after-validator on a collection once one item is bad, so the rule reads the
    raw items (tolerant of any value): a duplicate node name is reported beside a bad platform.
    """
    def run(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        found = list(rule(value))
        try:
            out = handler(value)
        except ValidationError as e:
            raise ValidationError.from_exception_data(e.title, _details(e) + _problem_details(found)) from None
        if found:
            raise problems(found)
        return out
    return WrapValidator(run)


class ConfigModel(BaseModel):
    """A section of the stack config (config keys are camelCase; Python callers may use field names)."""

    # python-re: some patterns look ahead (DNS names, ECR repositories), which the default engine cannot
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, frozen=True,
                              extra="forbid", regex_engine="python-re")

    @classmethod
    def keys(cls) -> list[str]:
        """The config keys this model accepts, in declaration order."""
        return [f.alias or name for name, f in cls.model_fields.items()]
