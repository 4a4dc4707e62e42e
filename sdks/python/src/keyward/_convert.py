"""JSON <-> the generated dataclasses in :mod:`keyward.models`.

The models are plain dataclasses (no pydantic), so this small converter reads their type hints:
nested models, ``List``/``Dict``, ``Optional``/``Union`` and ``Literal`` (kept as the string the
server sent, so a code added by a newer server still comes through). Fields the model does not
know are ignored; required fields the server left out (an older server) become ``None``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import keyword
import sys
import typing
from typing import Any, Dict, Tuple, Type, TypeVar

T = TypeVar("T")

_hints: Dict[type, Dict[str, Tuple[str, Any]]] = {}

if sys.version_info >= (3, 10):  # pragma: no cover - depends on the interpreter
    import types as _types

    _UNION_TYPES: Tuple[Any, ...] = (typing.Union, _types.UnionType)
else:  # pragma: no cover
    _UNION_TYPES = (typing.Union,)


def _py_name(json_name: str) -> str:
    return json_name + "_" if keyword.iskeyword(json_name) else json_name


def _json_name(py_name: str) -> str:
    if py_name.endswith("_") and keyword.iskeyword(py_name[:-1]):
        return py_name[:-1]
    return py_name


def _fields(cls: type) -> Dict[str, Tuple[str, Any]]:
    """json name -> (python name, type) for a dataclass, cached."""
    got = _hints.get(cls)
    if got is None:
        hints = typing.get_type_hints(cls)
        got = {_json_name(f.name): (f.name, hints[f.name]) for f in dataclasses.fields(cls)}
        _hints[cls] = got
    return got


def from_json(tp: Any, data: Any) -> Any:
    """Builds a value of type ``tp`` from decoded JSON ``data``."""
    if tp is Any or data is None:
        return data
    origin = typing.get_origin(tp)
    if origin in _UNION_TYPES:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        for a in args:
            if _fits(a, data):
                return from_json(a, data)
        return data
    if origin is typing.Literal:
        return data
    if origin in (list, typing.List):
        (item,) = typing.get_args(tp) or (Any,)
        return [from_json(item, x) for x in data] if isinstance(data, list) else data
    if origin in (dict, typing.Dict):
        args = typing.get_args(tp)
        val = args[1] if len(args) == 2 else Any
        return {k: from_json(val, v) for k, v in data.items()} if isinstance(data, dict) else data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            return data
        kwargs = {}
        for jname, (pname, ftype) in _fields(tp).items():
            kwargs[pname] = from_json(ftype, data.get(jname))
        return tp(**kwargs)
    return data


def _fits(tp: Any, data: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return data in typing.get_args(tp)
    if origin in (list, typing.List):
        return isinstance(data, list)
    if origin in (dict, typing.Dict):
        return isinstance(data, dict)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return isinstance(data, dict)
    if tp is bool:
        return isinstance(data, bool)
    if tp is int:
        return isinstance(data, int) and not isinstance(data, bool)
    if tp is float:
        return isinstance(data, (int, float)) and not isinstance(data, bool)
    if isinstance(tp, type):
        return isinstance(data, tp)
    return True


def parse(cls: Type[T], data: Any) -> T:
    return typing.cast(T, from_json(cls, data))


def to_json(value: Any) -> Any:
    """A model (or any mix of models, dicts, lists, datetimes) as JSON-ready data.

    ``None`` fields of a model are left out (the API reads an absent field as "not given").
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is not None:
                out[_json_name(f.name)] = to_json(v)
        return out
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, _dt.timedelta):
        return f"{int(value.total_seconds())}s"
    return value


def to_dict(model: Any) -> Dict[str, Any]:
    """A model as the JSON object the server sent (wire names, ``None`` fields left out)."""
    return typing.cast(Dict[str, Any], to_json(model))
