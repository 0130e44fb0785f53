"""Workloads: Avalon's heart-disease examples, echo, and the cross-hospital model."""

import json

import pytest

from heddle.tcf import workloads
from heddle.tcf.hospitals import cleveland_csv, split_records


def test_heart_disease_examples_give_47_and_71_percent():
    assert workloads.heart_disease_eval([b"25 10 1 67 102 125 1 95 5 10 1 11 36 1"]) == [
        b"You have a 47% risk of heart disease"
    ]
    assert workloads.heart_disease_eval([b"32 1 1 156 132 125 1 95 1 0 1 1 3 1"]) == [
        b"You have a 71% risk of heart disease"
    ]


def test_heart_disease_accepts_avalons_labelled_input_and_reports_an_average():
    out = workloads.heart_disease_eval(
        [
            b"Heart disease evaluation data: 25 10 1 67 102 125 1 95 5 10 1 11 36 1",
            b"32 1 1 156 132 125 1 95 1 0 1 1 3 1",
        ]
    )[0].decode()
    assert "Patient 1: 47%" in out and "Patient 2: 71%" in out and out.endswith("59% for 2 people")


@pytest.mark.parametrize("bad", [b"1 2 3", b"a b c d e f g h i j k l m n", b"\xff\xfe", b"nan " * 14])
def test_heart_disease_refuses_malformed_input(bad):
    with pytest.raises(workloads.WorkloadError):
        workloads.heart_disease_eval([bad])


def test_echo_and_workload_ids():
    assert workloads.echo([b"hi"]) == [b"RESULT: hi"]
    assert workloads.workload_id("echo-result") == "6563686f2d726573756c74"
    assert workloads.workload_name("6563686f2d726573756c74") == "echo-result"
    assert workloads.workload_name("heart-disease-eval") == "heart-disease-eval"
    assert workloads.workload_name("00ff") is None


def test_cross_hospital_analytics_is_deterministic_and_returns_aggregates_only():
    a, b = split_records(cleveland_csv(), 2)
    first = workloads.cross_hospital_analytics([a, b])[0]
    assert first == workloads.cross_hospital_analytics([a, b])[0]
    doc = json.loads(first)
    assert doc["rows_per_dataset"] == [151, 146]  # six records with '?' are skipped
    assert doc["train_rows"] + doc["test_rows"] == 297
    assert 0.7 <= doc["test_accuracy"] <= 1.0
    assert set(doc["coefficients"]) == set(workloads.FEATURES)
    assert b"63.0,1.0,1.0,145.0" not in first and "rows" not in {k for k in doc if k.endswith("records")}


def test_cross_hospital_analytics_refuses_tiny_populations_and_bad_csv():
    a, _ = split_records(cleveland_csv(), 2)
    head = b"\n".join(a.splitlines()[:10])
    with pytest.raises(workloads.WorkloadError, match="at least"):
        workloads.cross_hospital_analytics([head])
    with pytest.raises(workloads.WorkloadError, match="header"):
        workloads.cross_hospital_analytics([b"x,y\n1,2"])
    with pytest.raises(workloads.WorkloadError, match="option"):
        workloads.cross_hospital_analytics([a, b'{"rows": 1}'])
