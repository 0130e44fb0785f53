"""Rich (JSON selector) queries: the Mango subset over JSON values."""

from __future__ import annotations

import json

import pytest

from heddle.ledger.richquery import QueryError, parse_query, run

ASSETS = {
    "asset1": {"ID": "asset1", "Color": "blue", "Size": 5, "Owner": "Tomoko", "AppraisedValue": 300},
    "asset2": {"ID": "asset2", "Color": "red", "Size": 5, "Owner": "Brad", "AppraisedValue": 400},
    "asset3": {"ID": "asset3", "Color": "green", "Size": 10, "Owner": "Jin Soo", "AppraisedValue": 500},
    "asset4": {"ID": "asset4", "Color": "yellow", "Size": 10, "Owner": "Max", "AppraisedValue": 600},
    "asset5": {
        "ID": "asset5",
        "Color": "black",
        "Size": 15,
        "Owner": "Adriana",
        "AppraisedValue": 700,
        "tags": {"insured": True, "region": "eu"},
    },
    "asset6": {"ID": "asset6", "Color": "white", "Size": 15, "Owner": "Michel", "AppraisedValue": 800},
}
ROWS = [(k, json.dumps(v).encode()) for k, v in sorted(ASSETS.items())] + [
    ("binary", b"\xff\x00not json"),
    ("list", b"[1, 2]"),
]


def keys(query) -> list[str]:
    return [k for k, _ in run(ROWS, json.dumps(query))]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"Color": "red"}, ["asset2"]),
        ({"Size": {"$eq": 10}}, ["asset3", "asset4"]),
        ({"Size": {"$ne": 5}}, ["asset3", "asset4", "asset5", "asset6"]),
        ({"AppraisedValue": {"$gt": 600}}, ["asset5", "asset6"]),
        ({"AppraisedValue": {"$gte": 600, "$lt": 800}}, ["asset4", "asset5"]),
        ({"AppraisedValue": {"$lte": 300}}, ["asset1"]),
        ({"Owner": {"$in": ["Max", "Brad", "Nobody"]}}, ["asset2", "asset4"]),
        ({"Size": {"$nin": [5, 10]}}, ["asset5", "asset6"]),
        ({"tags": {"$exists": True}}, ["asset5"]),
        ({"tags": {"$exists": False}, "Size": 15}, ["asset6"]),
        ({"Owner": {"$regex": "^M"}}, ["asset4", "asset6"]),
        ({"$and": [{"Size": 5}, {"Color": "blue"}]}, ["asset1"]),
        ({"$or": [{"Color": "blue"}, {"Owner": "Max"}]}, ["asset1", "asset4"]),
        ({"$not": {"Size": {"$lt": 15}}}, ["asset5", "asset6"]),
        ({"Size": {"$not": {"$eq": 5}}}, ["asset3", "asset4", "asset5", "asset6"]),
        ({"tags.region": "eu"}, ["asset5"]),
        ({"tags": {"insured": True}}, ["asset5"]),
        ({"tags.region": {"$ne": "us"}}, ["asset5"]),  # a missing field never matches $ne
        ({"_id": "asset3"}, ["asset3"]),
        ({"Size": "5"}, []),  # types do not coerce
    ],
)
def test_selectors(selector, expected):
    assert keys({"selector": selector}) == expected


def test_sort_skip_limit_and_fields():
    q = {"selector": {"Size": {"$gte": 5}}, "sort": [{"AppraisedValue": "desc"}], "skip": 1, "limit": 2}
    assert keys(q) == ["asset5", "asset4"]
    q = {"selector": {"Size": 5}, "sort": ["Owner"]}
    assert keys(q) == ["asset2", "asset1"]
    q = {"selector": {"Color": "black"}, "fields": ["Owner", "tags.region"]}
    ((key, value),) = list(run(ROWS, json.dumps(q)))
    assert key == "asset5" and json.loads(value) == {"Owner": "Adriana", "tags": {"region": "eu"}}


def test_values_are_returned_unchanged_without_fields():
    ((_, value),) = list(run(ROWS, json.dumps({"selector": {"Color": "blue"}})))
    assert value == json.dumps(ASSETS["asset1"]).encode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"limit": 1}', "needs a 'selector'"),
        ('{"selector": {"a": {"$near": 1}}}', "unknown operator \\$near"),
        ('{"selector": {"$xor": []}}', "unknown operator \\$xor"),
        ('{"selector": {"a": {"$in": 1}}}', "\\$in .* needs a list"),
        ('{"selector": {"a": {"$regex": "("}}}', "not a valid regular expression"),
        ('{"selector": {"a": {"$exists": "yes"}}}', "true or false"),
        ('{"selector": {"$or": {"a": 1}}}', "list of selector objects"),
        ('{"selector": {}, "limit": -1}', "non-negative"),
        ('{"selector": {}, "sort": [{"a": "up"}]}', "asc' or 'desc"),
        ('{"selector": {}, "frobnicate": 1}', "unknown query field"),
        ('{"selector": {"a": {"$gt": 1, "b": 2}}}', "mixes operators"),
    ],
)
def test_malformed_queries_are_clear_errors(text, message):
    with pytest.raises(QueryError, match=message):
        parse_query(text)


def test_ignored_options_are_accepted():
    assert parse_query('{"selector": {"a": 1}, "use_index": ["_design/x"], "bookmark": "b"}').selector == {
        "a": 1
    }
