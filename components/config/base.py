"""The base of every config model: camelCase keys, unknown keys refused, every problem at once.

pydantic stops checking a model's own rules once one of its fields is bad. To report
*every* problem in one go, the base model's wrap validator gathers three kinds of
problem and raises them together: unknown keys, the model's tolerant raw rules
(``raw_problems``: cross-field rules that must run even when a field is bad, e.g.
duplicate node names beside a bad platform) and pydantic's own field errors.
Typed cross-field rules are plain ``@model_validator(mode="after")`` methods that
raise ``problems(...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ModelWrapValidatorHandler, ValidationError, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails

from components.config.fields import ERROR_TYPE, problem

#: (location relative to the model, message after the key path)
Problem = tuple[tuple[str | int, ...], str]


def problems(found: Iterable[Problem], title: str = "config") -> ValidationError:
    """One ValidationError carrying several problems (raised from inside a validator)."""
    details = [InitErrorDetails(type=problem(msg), loc=loc, input=None) for loc, msg in found]
    return ValidationError.from_exception_data(title, details)


def _as_details(e: ValidationError) -> list[InitErrorDetails]:
    out: list[InitErrorDetails] = []
    for err in e.errors():
        if err["type"] == ERROR_TYPE:
            out.append(InitErrorDetails(type=problem(err["msg"]), loc=err["loc"], input=err["input"]))
        else:
            d = InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"])
            if "ctx" in err:
                d["ctx"] = err["ctx"]
            out.append(d)
    return out


class ConfigModel(BaseModel):
    """A section of the stack config."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="ignore", arbitrary_types_allowed=False)

    #: keys of the raw config that are set by the program, not the user (none by default)
    internal_keys: ClassVar[frozenset[str]] = frozenset()

    def settle(self, **values: Any) -> Self:
        """Fill derived defaults from inside an after-validator (the model is frozen to everyone else)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)
        return self

    @classmethod
    def keys(cls) -> list[str]:
        """The config keys this model accepts, in declaration order."""
        return [f.alias or name for name, f in cls.model_fields.items()]

    @classmethod
    def unknown_key_problem(cls, key: str, value: Any) -> str:
        return f"unknown key (allowed: {', '.join(sorted(k for k in cls.keys() if k not in cls.internal_keys))})"

    @classmethod
    def raw_problems(cls, data: Mapping[str, Any]) -> Iterable[Problem]:
        """Cross-field rules over the raw input, run even when a field is bad (tolerant of any value)."""
        return ()

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem_at_once(cls, data: Any, handler: ModelWrapValidatorHandler[Any],
                               info: ValidationInfo) -> Any:
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise problems([((), f"{data!r} is not an object")])
        # Config keys are camelCase; Python callers may use field names too.
        by_name = not (info.context or {}).get("config", False)
        accepted = set(cls.keys()) | (set(cls.model_fields) if by_name else set())
        found: list[Problem] = [((k,), cls.unknown_key_problem(str(k), v)) for k, v in data.items()
                                if k not in accepted]
        found += cls.raw_problems(data)
        known = {k: v for k, v in data.items() if k in accepted}
        try:
            model = handler(known)
        except ValidationError as e:
            details = _as_details(e) + [InitErrorDetails(type=problem(m), loc=loc, input=None) for loc, m in found]
            raise ValidationError.from_exception_data(cls.__name__, details) from None
        if found:
            raise problems(found, cls.__name__)
        return model


def raw_list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def raw_str(data: Any, key: str) -> str | None:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, str) else None
