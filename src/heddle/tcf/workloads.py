"""Workloads a heddle worker runs inside its enclave.

A workload takes the decrypted inData items (bytes, in index order) and returns the
plaintext outData items. Workloads are pure and deterministic: no clock, no I/O, no
state kept between work orders (Avalon's heart-disease example accumulated patients
across requesters; heddle does not, so one requester never learns about another's).

``workloadId`` on the wire is the hex of the workload's name, as Avalon's clients send
it ("echo-result" -> "6563686f2d726573756c74").

This module is bundled into the worker enclave: it imports only the standard library.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence

Workload = Callable[[Sequence[bytes]], list[bytes]]


class WorkloadError(ValueError):
    """The inputs do not fit the workload; the message is safe to return to the requester."""


# --- echo -----------------------------------------------------------------------


def echo(items: Sequence[bytes]) -> list[bytes]:
    """Return each input unchanged (Avalon's ``echo-result`` prefixes "RESULT: ")."""
    if not items:
        raise WorkloadError("echo needs at least one inData item")
    return [b"RESULT: " + item for item in items]


# --- heart-disease-eval: Avalon's published scoring -------------------------------

FIELDS = (
    "age",
    "sex",
    "cp",
    "trestbps",
    "chol",
    "fbs",
    "restecg",
    "thalach",
    "exang",
    "oldpeak",
    "slope",
    "ca",
    "thal",
    "num",
)


def _near_optimum(worst: float, optimum: float, value: float) -> float:
    """100 at or below the optimum, falling linearly to 0 at ``worst``."""
    if value < optimum:
        return 100.0
    if value < worst:
        return 100.0 * (worst - value) / (worst - optimum)
    return 0.0


def _around_optimum(worst: float, optimum: float, value: float) -> float:
    """100 at the optimum, falling linearly with the distance from it to 0."""
    delta = abs(value - optimum)
    if delta < worst - optimum:
        return 100.0 - 100.0 * delta / (worst - optimum)
    return 0.0


def _pick(table: dict[int, float], value: int, default: float) -> float:
    return table.get(value, default)


def _thal(value: int) -> float:
    if 3 <= value < 6:
        return 45.0
    if 6 <= value < 8:
        return 79.0
    if value >= 8:
        return 100.0
    return 0.0


# (weight, score function) per field, in FIELDS order; the weights sum to 1.
_HEART_MODEL: tuple[tuple[float, Callable[[int], float]], ...] = (
    (0.03, lambda v: _near_optimum(100, 18, v)),  # age
    (0.01, lambda v: 100.0 if v == 0 else 0.0),  # sex: 0 female
    (0.21, lambda v: _pick({1: 0.0, 2: 12.0, 3: 35.0, 4: 100.0}, v, 100.0)),  # chest pain type
    (0.05, lambda v: _near_optimum(218, 108, v)),  # resting blood pressure
    (0.05, lambda v: _near_optimum(309, 126, v)),  # serum cholesterol
    (0.04, lambda v: _near_optimum(248, 98, v)),  # fasting blood sugar
    (0.19, lambda v: _pick({0: 100.0, 1: 9.0, 2: 7.0}, v, 100.0)),  # resting ECG
    (0.06, lambda v: _around_optimum(198, 61, v)),  # maximum heart rate
    (0.18, lambda v: _pick({0: 100.0, 1: 0.0}, v, 100.0)),  # exercise induced angina
    (0.05, lambda v: _near_optimum(100.0, 0.0, v)),  # ST depression
    (0.03, lambda v: _pick({0: 49.0, 1: 100.0}, v, 63.0)),  # slope of peak ST segment
    (0.04, lambda v: _pick({0: 0.0, 1: 35.0, 2: 70.0}, v, 100.0)),  # major vessels
    (0.02, _thal),  # thallium stress test
    (0.04, lambda v: 100.0 if v == 0 else 0.0),  # diagnosis
)


def _integer(token: str) -> int:
    """Parse like C's ``stoi``: leading integer part (Avalon's workload read ints)."""
    try:
        value = float(token)
    except ValueError:
        raise WorkloadError(f"not a number: {token[:20]!r}") from None
    if not math.isfinite(value):
        raise WorkloadError("values must be finite")
    return int(value)


def heart_disease_risk(values: Sequence[int]) -> int:
    """Risk in percent for the 14 Cleveland attributes, by Avalon's published formula."""
    if len(values) != len(_HEART_MODEL):
        raise WorkloadError(f"expected {len(_HEART_MODEL)} values, got {len(values)}")
    total = sum(weight * score(v) for (weight, score), v in zip(_HEART_MODEL, values, strict=True))
    return 100 - int(total)


def _parse_patient(item: bytes) -> list[int]:
    text = item.decode("utf-8", errors="strict").strip()
    if ":" in text:  # Avalon's clients send "label: v1 v2 ...", the workload reads after ':'
        text = text.split(":", 1)[1]
    return [_integer(tok) for tok in text.split()]


def heart_disease_eval(items: Sequence[bytes]) -> list[bytes]:
    """One output: each patient's risk, and the average when there are several."""
    if not items:
        raise WorkloadError("heart-disease-eval needs at least one patient")
    try:
        risks = [heart_disease_risk(_parse_patient(item)) for item in items]
    except UnicodeDecodeError:
        raise WorkloadError("inputs must be UTF-8 text") from None
    if len(risks) == 1:
        return [f"You have a {risks[0]}% risk of heart disease".encode()]
    lines = [f"Patient {i + 1}: {r}% risk of heart disease" for i, r in enumerate(risks)]
    lines.append(f"Heart disease risk is {sum(risks) // len(risks)}% for {len(risks)} people")
    return ["\n".join(lines).encode()]


# --- cross-hospital analytics: logistic regression over several hospitals' records -----

FEATURES = FIELDS[:-1]
MIN_ROWS = 40  # refuse aggregates over tiny populations
DEFAULT_OPTIONS = {"seed": 1947, "test_fraction": 0.25, "iterations": 600, "learning_rate": 0.3, "l2": 0.01}


def parse_records(item: bytes) -> list[tuple[list[float], int]]:
    """Rows of a Cleveland-format CSV (header row, 14 columns); rows with '?' are skipped."""
    try:
        lines = item.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        raise WorkloadError("records must be UTF-8 CSV") from None
    if not lines or [c.strip() for c in lines[0].split(",")] != list(FIELDS):
        raise WorkloadError("records must be CSV with the header " + ",".join(FIELDS))
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(FIELDS):
            raise WorkloadError("every record needs 14 columns")
        if "?" in cells:
            continue
        try:
            values = [float(c) for c in cells]
        except ValueError:
            raise WorkloadError("records must be numeric") from None
        if not all(math.isfinite(v) for v in values):
            raise WorkloadError("records must be finite")
        rows.append((values[:-1], 1 if values[-1] > 0 else 0))
    return rows


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def train_logistic_regression(
    rows: Sequence[tuple[list[float], int]], options: dict[str, float] | None = None
) -> dict[str, object]:
    """Deterministic split, standardisation and full-batch gradient descent.

    Returns only aggregates: coefficients (per standardised feature), the intercept,
    row counts, and accuracy on the held-out split.
    """
    opts = {**DEFAULT_OPTIONS, **(options or {})}
    if len(rows) < MIN_ROWS:
        raise WorkloadError(f"at least {MIN_ROWS} complete records are needed, got {len(rows)}")
    order = list(range(len(rows)))
    random.Random(int(opts["seed"])).shuffle(order)
    n_test = max(1, int(len(rows) * float(opts["test_fraction"])))
    test = [rows[i] for i in order[:n_test]]
    train = [rows[i] for i in order[n_test:]]
    k = len(FEATURES)
    means = [sum(x[j] for x, _ in train) / len(train) for j in range(k)]
    stds = [math.sqrt(sum((x[j] - means[j]) ** 2 for x, _ in train) / len(train)) or 1.0 for j in range(k)]

    def scale(x: list[float]) -> list[float]:
        return [(x[j] - means[j]) / stds[j] for j in range(k)]

    xs = [scale(x) for x, _ in train]
    ys = [y for _, y in train]
    w = [0.0] * k
    b = 0.0
    lr, l2, n = float(opts["learning_rate"]), float(opts["l2"]), len(xs)
    for _ in range(int(opts["iterations"])):
        grad = [0.0] * k
        grad_b = 0.0
        for x, y in zip(xs, ys, strict=True):
            err = _sigmoid(b + sum(wj * xj for wj, xj in zip(w, x, strict=True))) - y
            grad_b += err
            for j in range(k):
                grad[j] += err * x[j]
        w = [w[j] - lr * (grad[j] / n + l2 * w[j]) for j in range(k)]
        b -= lr * grad_b / n

    def predict(x: list[float]) -> int:
        return 1 if b + sum(wj * xj for wj, xj in zip(w, scale(x), strict=True)) >= 0 else 0

    correct = sum(1 for x, y in test if predict(x) == y)
    train_correct = sum(1 for x, y in train if predict(x) == y)
    return {
        "model": "logistic-regression",
        "features": list(FEATURES),
        "coefficients": {name: round(w[j], 6) for j, name in enumerate(FEATURES)},
        "intercept": round(b, 6),
        "standardized": True,
        "train_rows": len(train),
        "test_rows": len(test),
        "train_accuracy": round(train_correct / len(train), 4),
        "test_accuracy": round(correct / len(test), 4),
        "options": opts,
    }


def cross_hospital_analytics(items: Sequence[bytes]) -> list[bytes]:
    """Train and evaluate over every hospital's records; return aggregates only.

    Each inData item is one hospital's records (CSV); an item that is a JSON object
    instead sets training options (seed, test_fraction, iterations, learning_rate, l2).
    """
    options: dict[str, float] = {}
    rows: list[tuple[list[float], int]] = []
    per_input: list[int] = []
    for item in items:
        if item.lstrip().startswith(b"{"):
            try:
                doc = json.loads(item)
            except ValueError:
                raise WorkloadError("options must be a JSON object") from None
            if not isinstance(doc, dict):
                raise WorkloadError("options must be a JSON object")
            for key, value in doc.items():
                if key not in DEFAULT_OPTIONS or not isinstance(value, int | float):
                    raise WorkloadError(f"unknown or non-numeric option {str(key)[:40]!r}")
                options[key] = value
            continue
        parsed = parse_records(item)
        per_input.append(len(parsed))
        rows.extend(parsed)
    if len(per_input) < 1:
        raise WorkloadError("no records given")
    result = train_logistic_regression(rows, options)
    result["datasets"] = len(per_input)
    result["rows_per_dataset"] = per_input
    return [json.dumps(result, sort_keys=True).encode()]


WORKLOADS: dict[str, Workload] = {
    "echo": echo,
    "echo-result": echo,
    "heart-disease-eval": heart_disease_eval,
    "cross-hospital-analytics": cross_hospital_analytics,
}


def workload_id(name: str) -> str:
    """The wire ``workloadId`` for a workload name (hex of its UTF-8 bytes)."""
    return name.encode("utf-8").hex()


def workload_name(wire_id: str) -> str | None:
    """The workload a wire ``workloadId`` names, or None if it names none we run."""
    try:
        name = bytes.fromhex(wire_id).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        name = wire_id
    return name if name in WORKLOADS else None


def run(name: str, items: Sequence[bytes]) -> list[bytes]:
    return WORKLOADS[name](items)


__all__ = [
    "FEATURES",
    "FIELDS",
    "WORKLOADS",
    "WorkloadError",
    "cross_hospital_analytics",
    "echo",
    "heart_disease_eval",
    "heart_disease_risk",
    "parse_records",
    "run",
    "train_logistic_regression",
    "workload_id",
    "workload_name",
]
