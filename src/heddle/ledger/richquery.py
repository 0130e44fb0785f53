"""JSON selector ("rich") queries over JSON values: a subset of CouchDB's Mango query language.

Supported: ``selector`` with implicit equality, ``$eq $ne $gt $gte $lt $lte $in $nin $exists
$regex $and $or $nor $not``, nested fields (``{"a": {"b": 1}}`` or ``"a.b"``); ``sort`` (a list
of field names or ``{field: "asc"|"desc"}``), ``limit``, ``skip`` and ``fields`` (projection);
``use_index``, ``bookmark`` and ``execution_stats`` are accepted and ignored.

Only values that are JSON objects are documents (as in Fabric's CouchDB state); the key is
visible to selectors as ``_id``. As in Mango, a condition on a missing field never matches,
except ``{"$exists": false}``. Values compare by CouchDB's collation across types: null <
false < true < numbers < strings < arrays < objects (strings by code point, not ICU).

Execution is a full scan of the namespace, documented and fine for now: there are no indexes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

_MISSING = object()
_FIELD_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex", "$not"}
_COMBINATORS = {"$and", "$or", "$nor", "$not"}
_IGNORED = {"use_index", "bookmark", "execution_stats", "r", "conflicts", "update", "stable"}


class QueryError(ValueError):
    """A malformed rich query; the message says what is wrong and where."""


@dataclass
class Query:
    selector: dict
    sort: list[tuple[list[str], bool]] = field(default_factory=list)  # (path, descending)
    limit: int | None = None
    skip: int = 0
    fields: list[list[str]] | None = None


def parse_query(text: str | bytes) -> Query:
    """Parse and check a query; raise QueryError naming the problem."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QueryError(f"query is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise QueryError("query must be a JSON object with a 'selector'")
    unknown = set(doc) - {"selector", "sort", "limit", "skip", "fields"} - _IGNORED
    if unknown:
        raise QueryError(f"unknown query field(s): {', '.join(sorted(unknown))}")
    selector = doc.get("selector")
    if not isinstance(selector, dict):
        raise QueryError("query needs a 'selector' that is a JSON object")
    _check_selector(selector, "selector")
    query = Query(selector)
    query.sort = _parse_sort(doc.get("sort", []))
    query.limit = _non_negative(doc, "limit")
    query.skip = _non_negative(doc, "skip") or 0
    if "fields" in doc:
        fields = doc["fields"]
        if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
            raise QueryError("'fields' must be a list of field names")
        query.fields = [f.split(".") for f in fields] or None
    return query


def _non_negative(doc: dict, name: str) -> int | None:
    if name not in doc:
        return None
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise QueryError(f"'{name}' must be a non-negative integer, got {value!r}")
    return value


def _parse_sort(sort: Any) -> list[tuple[list[str], bool]]:
    if not isinstance(sort, list):
        raise QueryError("'sort' must be a list")
    out = []
    for item in sort:
        if isinstance(item, str):
            out.append((item.split("."), False))
        elif isinstance(item, dict) and len(item) == 1:
            ((name, direction),) = item.items()
            if direction not in ("asc", "desc"):
                raise QueryError(f"sort direction for {name!r} must be 'asc' or 'desc', got {direction!r}")
            out.append((name.split("."), direction == "desc"))
        else:
            raise QueryError(f"sort entries are field names or {{field: 'asc'|'desc'}}, got {item!r}")
    return out


def _check_selector(selector: dict, where: str) -> None:
    for name, cond in selector.items():
        if name.startswith("$"):
            if name not in _COMBINATORS:
                raise QueryError(f"unknown operator {name} in {where}")
            if name == "$not":
                if not isinstance(cond, dict):
                    raise QueryError(f"$not in {where} needs a selector object")
                _check_selector(cond, f"{where}.$not")
            else:
                if not isinstance(cond, list) or not all(isinstance(c, dict) for c in cond):
                    raise QueryError(f"{name} in {where} needs a list of selector objects")
                for i, c in enumerate(cond):
                    _check_selector(c, f"{where}.{name}[{i}]")
        else:
            _check_condition(cond, f"{where}.{name}")


def _check_condition(cond: Any, where: str) -> None:
    if not isinstance(cond, dict):
        return  # implicit equality
    ops = [k for k in cond if k.startswith("$")]
    if ops and len(ops) != len(cond):
        raise QueryError(f"{where} mixes operators and field names")
    if not ops:
        _check_selector(cond, where)  # nested fields
        return
    for op, arg in cond.items():
        if op not in _FIELD_OPS:
            raise QueryError(f"unknown operator {op} in {where}")
        if op in ("$in", "$nin") and not isinstance(arg, list):
            raise QueryError(f"{op} in {where} needs a list")
        if op == "$exists" and not isinstance(arg, bool):
            raise QueryError(f"$exists in {where} needs true or false")
        if op == "$regex":
            if not isinstance(arg, str):
                raise QueryError(f"$regex in {where} needs a string")
            try:
                re.compile(arg)
            except re.error as exc:
                raise QueryError(f"$regex in {where} is not a valid regular expression: {exc}") from exc
        if op == "$not":
            _check_condition(arg if isinstance(arg, dict) else {"$eq": arg}, f"{where}.$not")


# ----- evaluation -----


def _rank(v: Any) -> int:
    if v is None:
        return 0
    if v is False:
        return 1
    if v is True:
        return 2
    if isinstance(v, int | float):
        return 3
    if isinstance(v, str):
        return 4
    if isinstance(v, list):
        return 5
    return 6


def _compare(a: Any, b: Any) -> int:
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 5:
        for x, y in zip(a, b, strict=False):
            c = _compare(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra == 6:
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=False):
            c = _compare(ka, kb) or _compare(va, vb)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra in (0, 1, 2):
        return 0
    return (a > b) - (a < b)


def _get(doc: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _matches(selector: dict, doc: Any, prefix: list[str]) -> bool:
    for name, cond in selector.items():
        if name == "$and":
            ok = all(_matches(c, doc, prefix) for c in cond)
        elif name == "$or":
            ok = any(_matches(c, doc, prefix) for c in cond)
        elif name == "$nor":
            ok = not any(_matches(c, doc, prefix) for c in cond)
        elif name == "$not":
            ok = not _matches(cond, doc, prefix)
        else:
            path = prefix + name.split(".")
            if isinstance(cond, dict) and cond and not next(iter(cond)).startswith("$"):
                ok = _matches(cond, doc, path)
            else:
                ok = _field_ok(_get(doc, path), cond)
        if not ok:
            return False
    return True


def _field_ok(value: Any, cond: Any) -> bool:
    if not isinstance(cond, dict):
        return value is not _MISSING and _compare(value, cond) == 0
    for op, arg in cond.items():
        if op == "$exists":
            if (value is not _MISSING) != arg:
                return False
            continue
        if op == "$not":
            if value is _MISSING or _field_ok(value, arg):
                return False
            continue
        if value is _MISSING:
            return False
        if op == "$eq":
            ok = _compare(value, arg) == 0
        elif op == "$ne":
            ok = _compare(value, arg) != 0
        elif op == "$gt":
            ok = _compare(value, arg) > 0
        elif op == "$gte":
            ok = _compare(value, arg) >= 0
        elif op == "$lt":
            ok = _compare(value, arg) < 0
        elif op == "$lte":
            ok = _compare(value, arg) <= 0
        elif op == "$in":
            ok = any(_compare(value, a) == 0 for a in arg)
        elif op == "$nin":
            ok = all(_compare(value, a) != 0 for a in arg)
        else:  # $regex
            ok = isinstance(value, str) and re.search(arg, value) is not None
        if not ok:
            return False
    return True


def matches(selector: dict, doc: Any) -> bool:
    """True if ``doc`` (a decoded JSON object) satisfies ``selector``."""
    return _matches(selector, doc, [])


class _SortKey:
    __slots__ = ("desc", "values")

    def __init__(self, values: list[Any], desc: list[bool]):
        self.values, self.desc = values, desc

    def __lt__(self, other: _SortKey) -> bool:
        for a, b, d in zip(self.values, other.values, self.desc, strict=True):
            # a missing field sorts before every value
            c = (b is _MISSING) - (a is _MISSING) if _MISSING in (a, b) else _compare(a, b)
            if c:
                return c > 0 if d else c < 0
        return False


def _project(doc: dict, fields: list[list[str]]) -> dict:
    out: dict = {}
    for path in fields:
        value = _get(doc, path)
        if value is _MISSING:
            continue
        target = out
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return out


def execute(rows: Iterable[tuple[str, bytes]], query: Query) -> list[tuple[str, bytes]]:
    """Apply ``query`` to (key, value) rows in key order; returns the matching (key, value)."""
    hits: list[tuple[str, bytes, dict]] = []
    for key, value in rows:
        doc = _as_document(key, value)
        if doc is not None and matches(query.selector, doc):
            hits.append((key, value, doc))
    if query.sort:
        paths = [p for p, _ in query.sort]
        desc = [d for _, d in query.sort]
        hits.sort(key=lambda h: _SortKey([_get(h[2], p) for p in paths], desc))
    end = None if query.limit is None else query.skip + query.limit
    hits = hits[query.skip : end]
    if query.fields:
        return [
            (k, json.dumps(_project(d, query.fields), separators=(",", ":")).encode()) for k, _, d in hits
        ]
    return [(k, v) for k, v, _ in hits]


def _as_document(key: str, value: bytes) -> dict | None:
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    doc.setdefault("_id", key)
    return doc


def run(rows: Iterable[tuple[str, bytes]], query_json: str | bytes) -> Iterator[tuple[str, bytes]]:
    """Parse ``query_json`` and run it over ``rows`` (a full scan)."""
    return iter(execute(rows, parse_query(query_json)))


__all__ = ["Query", "QueryError", "execute", "matches", "parse_query", "run"]
