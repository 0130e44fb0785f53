"""Property tests: the language round-trips, evaluation matches reference models."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_fakes import FakeDeserializer, forged, signed

from heddle.policy import (
    PolicyError,
    SignaturePolicy,
    SignedData,
    format_signature_policy,
    parse_signature_policy,
)

settings.register_profile("policy", derandomize=True, deadline=None, max_examples=150)
settings.load_profile("policy")

ROLES = ("member", "admin", "client", "peer", "orderer")


@dataclass(frozen=True)
class Leaf:
    mspid: str
    role: str


@dataclass(frozen=True)
class Gate:
    n: int
    children: tuple


mspids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.-]{0,10}", fullmatch=True)
leaves = st.builds(Leaf, mspids, st.sampled_from(ROLES))


@st.composite
def gates(draw, leaf_strategy, max_depth=3):
    if max_depth == 0:
        children = draw(st.lists(leaf_strategy, min_size=1, max_size=4))
    else:
        children = draw(
            st.lists(
                st.one_of(leaf_strategy, gates(leaf_strategy, max_depth - 1)),
                min_size=1,
                max_size=4,
            )
        )
    # n = 0 (always satisfied) is legal but kept rare so verdicts are mixed.
    n = draw(
        st.sampled_from([0, *range(1, len(children) + 1)] + [*range(1, len(children) + 1)] * 3)
    )
    return Gate(n, tuple(children))


@st.composite
def render(draw, node) -> str:
    """Any spelling the language allows: operator case, quotes, whitespace."""
    ws = draw(st.sampled_from(["", " ", "  ", "\n\t"]))
    if isinstance(node, Leaf):
        q = draw(st.sampled_from(["'", '"']))
        return f"{q}{node.mspid}.{node.role}{q}"
    parts = [draw(render(c)) for c in node.children]
    if node.n == len(node.children) and draw(st.booleans()):
        op, args = draw(st.sampled_from(["AND", "and", "And"])), parts
    elif node.n == 1 and draw(st.booleans()):
        op, args = draw(st.sampled_from(["OR", "or", "Or"])), parts
    else:
        op, args = draw(st.sampled_from(["OutOf", "outof", "OUTOF"])), [str(node.n), *parts]
    return f"{op}{ws}({ws}" + f"{ws},{ws}".join(args) + f"{ws})"


@st.composite
def rendered_policies(draw, leaf_strategy=leaves):
    tree = draw(gates(leaf_strategy))
    return tree, draw(render(tree))


def count_leaves(node) -> int:
    return 1 if isinstance(node, Leaf) else sum(count_leaves(c) for c in node.children)


@given(rendered_policies())
def test_format_then_parse_reproduces_the_envelope_byte_for_byte(case):
    tree, text = case
    env = parse_signature_policy(text)
    assert len(env.identities) == count_leaves(tree)
    canonical = format_signature_policy(env)
    again = parse_signature_policy(canonical)
    assert again.SerializeToString() == env.SerializeToString()
    assert format_signature_policy(again) == canonical


# --- Evaluation against a reference model ------------------------------------------------

SIGNERS = [
    ("A", "a1", ("admin",)),
    ("A", "a2", ("peer",)),
    ("A", "a3", ()),
    ("B", "b1", ("admin",)),
]
SIGNERS += [("B", "b2", ("client",)), ("C", "c1", ("peer",)), ("C", "c2", ("admin",))]


def matches(signer, leaf: Leaf) -> bool:
    mspid, _, roles = signer
    return mspid == leaf.mspid and (leaf.role == "member" or leaf.role in roles)


def fabric_reference(node, signers, used: frozenset) -> tuple[bool, frozenset]:
    """Fabric's cauthdsl, written independently: greedy first-unused match, keep the
    marks of every satisfied operand, drop those of a failed gate."""
    if isinstance(node, Leaf):
        for i, s in enumerate(signers):
            if i not in used and matches(s, node):
                return True, used | {i}
        return False, used
    met = 0
    for child in node.children:
        ok, marks = fabric_reference(child, signers, used)
        if ok:
            met += 1
            used = marks
    return met >= node.n, used


def valid_signers(entries):
    """Reference for step 1: drop forged entries and repeats of an accepted signer."""
    out, seen = [], set()
    for signer, valid in entries:
        if valid and signer not in seen:
            seen.add(signer)
            out.append(signer)
    return out


def to_signed_data(entries) -> list[SignedData]:
    return [(signed if valid else forged)(m, n, *r) for (m, n, r), valid in entries]


def heddle_verdict(tree, entries, deserializer=None) -> bool:
    policy = SignaturePolicy(parse_signature_policy(format_tree(tree)))
    try:
        policy.evaluate(to_signed_data(entries), deserializer or FakeDeserializer())
    except PolicyError:
        return False
    return True


def format_tree(node) -> str:
    if isinstance(node, Leaf):
        return f"'{node.mspid}.{node.role}'"
    return f"OutOf({node.n}, " + ", ".join(format_tree(c) for c in node.children) + ")"


small_leaves = st.builds(Leaf, st.sampled_from("ABC"), st.sampled_from(("member", "admin", "peer")))
entries_st = st.lists(st.tuples(st.sampled_from(SIGNERS), st.booleans()), max_size=8)


@given(gates(small_leaves), entries_st)
def test_evaluation_agrees_with_fabric_reference_model(tree, entries):
    expected, _ = fabric_reference(tree, valid_signers(entries), frozenset())
    d = FakeDeserializer()
    assert heddle_verdict(tree, entries, d) == expected
    assert d.counters.verify <= len(entries)


@given(gates(small_leaves), entries_st, st.data())
def test_a_duplicate_signature_never_counts_twice(tree, entries, data):
    valid = [e for e in entries if e[1]]
    if not valid:
        return
    extra = data.draw(st.lists(st.sampled_from(valid), min_size=1, max_size=4))
    assert heddle_verdict(tree, entries + extra) == heddle_verdict(tree, entries)


@st.composite
def distinct_principal_trees(draw):
    """Trees whose leaves name distinct MSPs: here Fabric's rule is a plain boolean
    threshold formula, so a very simple model applies."""
    tree = draw(gates(st.just(Leaf("?", "member"))))
    counter = iter(range(1000))

    def relabel(node):
        if isinstance(node, Leaf):
            return Leaf(f"M{next(counter)}", "member")
        return Gate(node.n, tuple(relabel(c) for c in node.children))

    return relabel(tree)


def threshold_model(node, signing_msps) -> bool:
    if isinstance(node, Leaf):
        return node.mspid in signing_msps
    return sum(threshold_model(c, signing_msps) for c in node.children) >= node.n


msp_entries = st.lists(
    st.tuples(st.integers(0, 12).map(lambda i: (f"M{i}", f"id{i}", ())), st.booleans()),
    max_size=10,
)


@given(distinct_principal_trees(), msp_entries)
def test_evaluation_agrees_with_threshold_model_on_distinct_principals(tree, entries):
    signing = {signer[0] for signer, valid in entries if valid}
    assert heddle_verdict(tree, entries) == threshold_model(tree, signing)


@given(distinct_principal_trees(), msp_entries, st.integers(0, 12), st.data())
def test_adding_a_valid_signature_never_unsatisfies_distinct_principal_policies(
    tree, entries, extra, data
):
    position = data.draw(st.integers(0, len(entries)))
    more = entries[:position] + [((f"M{extra}", f"new{extra}", ()), True)] + entries[position:]
    if heddle_verdict(tree, entries):
        assert heddle_verdict(tree, more)
