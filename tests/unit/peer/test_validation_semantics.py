"""Validation on the commit path with real identities and signatures: endorsement policies
(chaincode, channel reference, key-level), MVCC and phantom reads, and replay after a crash."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from endorsed_tx import Definitions, channel_policy, endorse, signature_policy, simulate, writes
from fabric_protos.peer import transaction_pb2 as tx

from heddle.ledger.kvledger import KvLedger
from heddle.ledger.mvcc import decode_metadata
from heddle.msp import load_signing_identity
from heddle.peer.channel import PeerChannel
from heddle.policy import parse_signature_policy
from heddle.protocol import new_block, sign_block

BOTH = "AND('Org1MSP.peer','Org2MSP.peer')"
EITHER = "OR('Org1MSP.peer','Org2MSP.peer')"
DEFS = Definitions(
    strict=signature_policy(BOTH),
    loose=signature_policy(EITHER),
    majority=channel_policy("/Channel/Application/Endorsement"),
)


@pytest.fixture(scope="module")
def ids(material):
    class Ids:
        user = load_signing_identity(material.msp(1), "Org1MSP")
        p1 = load_signing_identity(material.peer_msp(1), "Org1MSP")
        p2 = load_signing_identity(material.peer_msp(2), "Org2MSP")
        orderer = material.orderer_identity()

    return Ids


@pytest.fixture(params=[None, "pool"])
def channel(request, material, tmp_path):
    pool = ThreadPoolExecutor(4) if request.param else None
    ch = PeerChannel.create(
        tmp_path / "ledgers",
        material.genesis_copy(),
        pool=pool,
        definitions=DEFS,
        lifecycle_policy=lambda state, key: None,
    )
    yield ch
    ch.close()
    if pool:
        pool.shutdown()


def commit(ch, ids, envelopes):
    block = new_block(ch.height, ch._prev_hash, [e.SerializeToString() for e in envelopes])
    sign_block(block, ids.orderer.serialized, ids.orderer.sign, last_config=0)
    return [tx.TxValidationCode.Name(r.code) for r in ch.commit(block)]


def put(ids, ns, values, endorsers=None):
    endorsers = [ids.p1, ids.p2] if endorsers is None else endorsers
    return endorse(ids.user, endorsers, ns, writes(ns, values))


def value(ch, ns, key):
    vv = ch.ledger.state.get(ns, key)
    return None if vv is None else vv.value


# ----- endorsement policies -----


def test_and_policy_with_one_org_fails_and_changes_nothing(channel, ids):
    assert commit(channel, ids, [put(ids, "strict", {"k": b"1"}, [ids.p1])]) == ["ENDORSEMENT_POLICY_FAILURE"]
    assert value(channel, "strict", "k") is None
    assert channel.ledger.state.savepoint().block_num == 1
    assert commit(channel, ids, [put(ids, "strict", {"k": b"1"}, [ids.p2, ids.p1])]) == ["VALID"]
    assert value(channel, "strict", "k") == b"1"


def test_endorsement_by_a_client_identity_does_not_count_as_a_peer(channel, ids):
    assert commit(channel, ids, [put(ids, "loose", {"k": b"1"}, [ids.user])]) == [
        "ENDORSEMENT_POLICY_FAILURE"
    ]


def test_a_forged_endorsement_signature_does_not_count(channel, ids):
    env = put(ids, "strict", {"k": b"1"})
    from fabric_protos.common import common_pb2
    from fabric_protos.peer import transaction_pb2

    payload = common_pb2.Payload.FromString(env.payload)
    t = transaction_pb2.Transaction.FromString(payload.data)
    cap = transaction_pb2.ChaincodeActionPayload.FromString(t.actions[0].payload)
    cap.action.endorsements[1].signature = ids.p2.sign(b"something else")
    t.actions[0].payload = cap.SerializeToString()
    payload.data = t.SerializeToString()
    env = common_pb2.Envelope(payload=payload.SerializeToString())
    env.signature = ids.user.sign(env.payload)
    assert commit(channel, ids, [env]) == ["ENDORSEMENT_POLICY_FAILURE"]


def test_majority_endorsement_channel_reference(channel, ids):
    assert commit(channel, ids, [put(ids, "majority", {"k": b"1"}, [ids.p1])]) == [
        "ENDORSEMENT_POLICY_FAILURE"
    ]
    assert commit(channel, ids, [put(ids, "majority", {"k": b"2"})]) == ["VALID"]
    assert value(channel, "majority", "k") == b"2"


def test_namespace_without_definition_fails_the_policy(channel, ids):
    assert commit(channel, ids, [put(ids, "nosuchcc", {"k": b"1"})]) == ["ENDORSEMENT_POLICY_FAILURE"]
    assert value(channel, "nosuchcc", "k") is None


def test_write_to_a_system_chaincode_namespace_is_illegal(channel, ids):
    assert commit(channel, ids, [put(ids, "qscc", {"k": b"1"})]) == ["ILLEGAL_WRITESET"]


def test_lifecycle_writes_need_lifecycle_endorsement(channel, ids):
    key = "namespaces/fields/strict/Sequence"
    assert commit(channel, ids, [put(ids, "_lifecycle", {key: b"x"}, [ids.p1])]) == [
        "ENDORSEMENT_POLICY_FAILURE"
    ]
    assert commit(channel, ids, [put(ids, "_lifecycle", {key: b"x"})]) == ["VALID"]


def vp(text):
    return parse_signature_policy(text).SerializeToString()


def set_key_policy(ns, key, text):
    return lambda sim: sim.set_state_metadata(ns, key, {"VALIDATION_PARAMETER": vp(text)})


def test_key_level_policy_overrides_the_chaincode_policy(channel, ids):
    st = channel.ledger.state
    assert commit(channel, ids, [put(ids, "loose", {"k": b"1", "other": b"1"})]) == ["VALID"]
    meta = endorse(ids.user, [ids.p1], "loose", simulate(st, set_key_policy("loose", "k", BOTH)))
    assert commit(channel, ids, [meta]) == ["VALID"]
    assert decode_metadata(st.get("loose", "k").metadata)["VALIDATION_PARAMETER"] == vp(BOTH)
    # Org1 alone satisfies the chaincode policy, but not k's policy
    assert commit(channel, ids, [put(ids, "loose", {"k": b"2"}, [ids.p1])]) == ["ENDORSEMENT_POLICY_FAILURE"]
    assert commit(channel, ids, [put(ids, "loose", {"other": b"2"}, [ids.p1])]) == ["VALID"]
    assert commit(channel, ids, [put(ids, "loose", {"k": b"3"})]) == ["VALID"]
    assert value(channel, "loose", "k") == b"3"
    # the value write kept the key's policy
    assert decode_metadata(st.get("loose", "k").metadata)["VALIDATION_PARAMETER"] == vp(BOTH)
    # changing the key's policy must satisfy its current policy
    relax = endorse(ids.user, [ids.p1], "loose", simulate(st, set_key_policy("loose", "k", EITHER)))
    assert commit(channel, ids, [relax]) == ["ENDORSEMENT_POLICY_FAILURE"]


def test_looser_key_policy_lets_one_org_write_under_an_and_chaincode_policy(channel, ids):
    st = channel.ledger.state
    assert commit(channel, ids, [put(ids, "strict", {"k": b"1"})]) == ["VALID"]
    meta = endorse(
        ids.user,
        [ids.p1, ids.p2],
        "strict",
        simulate(st, set_key_policy("strict", "k", "OR('Org2MSP.peer')")),
    )
    assert commit(channel, ids, [meta]) == ["VALID"]
    assert commit(channel, ids, [put(ids, "strict", {"k": b"2"}, [ids.p2])]) == ["VALID"]
    assert commit(channel, ids, [put(ids, "strict", {"k": b"3"}, [ids.p1])]) == ["ENDORSEMENT_POLICY_FAILURE"]
    assert value(channel, "strict", "k") == b"2"


def test_key_policy_changed_earlier_in_the_block_invalidates_later_writers(channel, ids):
    st = channel.ledger.state
    assert commit(channel, ids, [put(ids, "loose", {"k": b"1"})]) == ["VALID"]
    meta = endorse(ids.user, [ids.p1], "loose", simulate(st, set_key_policy("loose", "k", BOTH)))
    later = put(ids, "loose", {"k": b"2"}, [ids.p1])
    assert commit(channel, ids, [meta, later]) == ["VALID", "ENDORSEMENT_POLICY_FAILURE"]
    assert value(channel, "loose", "k") == b"1"


def test_definition_changed_earlier_in_the_block_invalidates_later_invocations(channel, ids):
    lc = put(ids, "_lifecycle", {"namespaces/fields/loose/Sequence": b"2"})
    assert commit(channel, ids, [lc, put(ids, "loose", {"k": b"1"})]) == ["VALID", "MVCC_READ_CONFLICT"]


# ----- MVCC and phantoms -----


def read_then_write(st, ns, key, new):
    def body(sim):
        sim.get_state(ns, key)
        sim.set_state(ns, key, new)

    return simulate(st, body)


def test_two_transactions_racing_on_one_key(channel, ids):
    st = channel.ledger.state
    assert commit(channel, ids, [put(ids, "loose", {"asset": b"alice"})]) == ["VALID"]
    t1 = endorse(ids.user, [ids.p1], "loose", read_then_write(st, "loose", "asset", b"bob"))
    t2 = endorse(ids.user, [ids.p1], "loose", read_then_write(st, "loose", "asset", b"carol"))
    assert commit(channel, ids, [t1, t2]) == ["VALID", "MVCC_READ_CONFLICT"]
    assert value(channel, "loose", "asset") == b"bob"
    assert tuple(st.get("loose", "asset").version) == (2, 0)


def test_read_of_a_key_changed_in_an_earlier_block_conflicts(channel, ids):
    st = channel.ledger.state
    assert commit(channel, ids, [put(ids, "loose", {"asset": b"1"})]) == ["VALID"]
    stale = endorse(ids.user, [ids.p1], "loose", read_then_write(st, "loose", "asset", b"3"))
    assert commit(channel, ids, [put(ids, "loose", {"asset": b"2"})]) == ["VALID"]
    assert commit(channel, ids, [stale]) == ["MVCC_READ_CONFLICT"]
    assert value(channel, "loose", "asset") == b"2"
    # a read of an absent key conflicts once the key exists
    absent = endorse(ids.user, [ids.p1], "loose", read_then_write(st, "loose", "new", b"x"))
    assert commit(channel, ids, [put(ids, "loose", {"new": b"first"})]) == ["VALID"]
    assert commit(channel, ids, [absent]) == ["MVCC_READ_CONFLICT"]


def scan(ns, start, end, write_key):
    def body(sim):
        it = sim.get_state_range(ns, start, end)
        n = sum(1 for _ in it)
        it.close()
        sim.set_state(ns, write_key, str(n).encode())

    return body


def test_insert_into_a_scanned_range_earlier_in_the_block_is_a_phantom(channel, ids):
    st = channel.ledger.state
    assert commit(channel, ids, [put(ids, "loose", {"a1": b"1", "a3": b"3"})]) == ["VALID"]
    counter = endorse(ids.user, [ids.p1], "loose", simulate(st, scan("loose", "a", "b", "count")))
    insert = put(ids, "loose", {"a2": b"2"}, [ids.p1])
    outside = put(ids, "loose", {"b9": b"9"}, [ids.p1])
    assert commit(channel, ids, [outside, insert, counter]) == ["VALID", "VALID", "PHANTOM_READ_CONFLICT"]
    assert value(channel, "loose", "count") is None


def test_insert_into_a_scanned_range_in_a_later_block_is_a_phantom(channel, ids):
    st = channel.ledger.state
    assert commit(channel, ids, [put(ids, "loose", {"a1": b"1", "a3": b"3"})]) == ["VALID"]
    counter = endorse(ids.user, [ids.p1], "loose", simulate(st, scan("loose", "a", "b", "count")))
    unaffected = endorse(ids.user, [ids.p1], "loose", simulate(st, scan("loose", "a", "b", "count2")))
    assert commit(channel, ids, [put(ids, "loose", {"b1": b"x"})]) == ["VALID"]  # outside [a, b)
    assert commit(channel, ids, [unaffected]) == ["VALID"]
    assert commit(channel, ids, [put(ids, "loose", {"a2": b"2"})]) == ["VALID"]
    assert commit(channel, ids, [counter]) == ["PHANTOM_READ_CONFLICT"]


def test_deleting_a_scanned_key_is_a_phantom_but_a_stopped_scan_ignores_keys_past_it(channel, ids):
    st = channel.ledger.state
    assert commit(channel, ids, [put(ids, "loose", {"a1": b"1", "a2": b"2", "a3": b"3"})]) == ["VALID"]

    def first_only(sim):
        it = sim.get_state_range("loose", "a", "b")
        next(it)
        it.close()
        sim.set_state("loose", "first", b"a1")

    early = endorse(ids.user, [ids.p1], "loose", simulate(st, first_only))
    full = endorse(ids.user, [ids.p1], "loose", simulate(st, scan("loose", "a", "b", "n")))
    delete = endorse(ids.user, [ids.p1], "loose", simulate(st, lambda sim: sim.delete_state("loose", "a3")))
    assert commit(channel, ids, [delete, early, full]) == ["VALID", "VALID", "PHANTOM_READ_CONFLICT"]


# ----- replay -----


def dump(state, namespaces):
    out = {}
    for ns in namespaces:
        for key, vv in state.range(ns):
            out[(ns, key)] = (
                vv.value,
                tuple(vv.version),
                vv.metadata,
                [tuple(h) for h in state.history(ns, key)],
            )
    return out


def test_replay_after_crash_gives_identical_state(material, ids, tmp_path):
    ch = PeerChannel.create(tmp_path / "a", material.genesis_copy(), pool=None, definitions=DEFS)
    st = ch.ledger.state
    assert commit(ch, ids, [put(ids, "loose", {"k": b"1", "d": b"x", "m": b"m"})]) == ["VALID"]
    t1 = endorse(ids.user, [ids.p1], "loose", read_then_write(st, "loose", "k", b"2"))
    t2 = endorse(ids.user, [ids.p1], "loose", read_then_write(st, "loose", "k", b"3"))
    meta = endorse(ids.user, [ids.p1], "loose", simulate(st, set_key_policy("loose", "m", BOTH)))
    dele = endorse(ids.user, [ids.p1], "loose", simulate(st, lambda sim: sim.delete_state("loose", "d")))
    bad = put(ids, "strict", {"z": b"1"}, [ids.p1])
    assert commit(ch, ids, [t1, t2, meta, dele, bad]) == [
        "VALID",
        "MVCC_READ_CONFLICT",
        "VALID",
        "VALID",
        "ENDORSEMENT_POLICY_FAILURE",
    ]
    assert commit(ch, ids, [put(ids, "loose", {"m": b"m2", "d": b"again"})]) == ["VALID"]
    expected = dump(st, ["loose", "strict"])
    assert decode_metadata(expected[("loose", "m")][2])  # the key policy survived the value write
    blocks = [ch.block(n) for n in range(1, ch.height)]
    ch.close()

    # a second peer has the same blocks but its state never saw them (crash before state commit)
    ch2 = PeerChannel.create(tmp_path / "b", material.genesis_copy(), pool=None, definitions=DEFS)
    for b in blocks:
        ch2.ledger.blocks.append(b)
    ch2.close()
    ledger = KvLedger(tmp_path / "b" / "mychannel")
    try:
        assert dump(ledger.state, ["loose", "strict"]) == expected
        assert ledger.state.savepoint().block_num == len(blocks)
    finally:
        ledger.close()


# ----- with the real _lifecycle definitions (no injected lookups) -----


def test_definition_committed_through_lifecycle_is_enforced(material, ids, tmp_path):
    from heddle.chaincode.lifecycle import ChaincodeDefinition
    from heddle.chaincode.lifecycle.definitions import write_definition

    ch = PeerChannel.create(tmp_path / "l", material.genesis_copy(), pool=None)
    try:
        st = ch.ledger.state
        definition = ChaincodeDefinition("basic", 1, "1.0", validation_parameter=signature_policy(BOTH))
        rw = simulate(st, lambda sim: write_definition(sim, definition))
        # LifecycleEndorsement is MAJORITY Endorsement: one org of two is not enough
        assert commit(ch, ids, [endorse(ids.user, [ids.p1], "_lifecycle", rw)]) == [
            "ENDORSEMENT_POLICY_FAILURE"
        ]
        assert commit(ch, ids, [endorse(ids.user, [ids.p1, ids.p2], "_lifecycle", rw)]) == ["VALID"]
        assert commit(ch, ids, [put(ids, "basic", {"k": b"1"}, [ids.p1])]) == ["ENDORSEMENT_POLICY_FAILURE"]
        assert commit(ch, ids, [put(ids, "basic", {"k": b"1"})]) == ["VALID"]
        assert value(ch, "basic", "k") == b"1"
        # an org may write its own approvals, not another org's
        approval = writes("_lifecycle", {"orgs/Org2MSP/namespaces/metadata/basic#2": b"x"})
        assert commit(ch, ids, [endorse(ids.user, [ids.p1], "_lifecycle", approval)]) == [
            "ENDORSEMENT_POLICY_FAILURE"
        ]
        assert commit(ch, ids, [endorse(ids.user, [ids.p2], "_lifecycle", approval)]) == ["VALID"]
    finally:
        ch.close()
