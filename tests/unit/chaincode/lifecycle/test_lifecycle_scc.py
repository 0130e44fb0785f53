"""``_lifecycle`` over a simulator and a real state DB: install, approve, readiness, commit,
queries, sequence rules, access checks, and the write policies validation uses."""

from __future__ import annotations

import pytest
from fabric_protos.peer import collection_pb2, policy_pb2
from fabric_protos.peer.lifecycle import lifecycle_pb2 as lb

from heddle.chaincode.lifecycle import (
    LIFECYCLE_ENDORSEMENT,
    LifecycleKeyError,
    SccContext,
    approved_package_id,
    ccaas_package,
    committed_definition,
    default_validation_parameter,
    evaluate_lifecycle_write,
    validation_policy_for_lifecycle_write,
)
from heddle.chaincode.system import SccError
from heddle.policy import PolicyError, SignedData, format_signature_policy, parse_signature_policy
from heddle.protocol import parse_rwset


def approve_args(
    seq=1, version="1.0", package_id="basic_1.0:abc", **kw
) -> lb.ApproveChaincodeDefinitionForMyOrgArgs:
    args = lb.ApproveChaincodeDefinitionForMyOrgArgs(name="basic", sequence=seq, version=version, **kw)
    if package_id:
        args.source.local_package.package_id = package_id
    return args


def commit_args(seq=1, version="1.0", **kw) -> lb.CommitChaincodeDefinitionArgs:
    return lb.CommitChaincodeDefinitionArgs(name="basic", sequence=seq, version=version, **kw)


def readiness(lc, seq=1, version="1.0", org=1, **kw) -> lb.CheckCommitReadinessResult:
    raw = lc.call(
        "CheckCommitReadiness",
        lb.CheckCommitReadinessArgs(name="basic", sequence=seq, version=version, **kw),
        org=org,
        commit=False,
    )
    return lb.CheckCommitReadinessResult.FromString(raw)


def error_of(fn, *args, **kw) -> SccError:
    with pytest.raises(SccError) as info:
        fn(*args, **kw)
    return info.value


# ----- install and installed queries -----


def test_install_by_local_admin_returns_package_id(lc):
    data = ccaas_package("basic_1.0", "127.0.0.1:9999")
    raw = lc.local_call("InstallChaincode", lb.InstallChaincodeArgs(chaincode_install_package=data))
    result = lb.InstallChaincodeResult.FromString(raw)
    assert result.label == "basic_1.0" and result.package_id.startswith("basic_1.0:")
    listed = lb.QueryInstalledChaincodesResult.FromString(
        lc.local_call("QueryInstalledChaincodes", lb.QueryInstalledChaincodesArgs())
    )
    assert [(c.package_id, c.label) for c in listed.installed_chaincodes] == [
        (result.package_id, "basic_1.0")
    ]
    one = lb.QueryInstalledChaincodeResult.FromString(
        lc.local_call("QueryInstalledChaincode", lb.QueryInstalledChaincodeArgs(package_id=result.package_id))
    )
    assert one.label == "basic_1.0"
    got = lb.GetInstalledChaincodePackageResult.FromString(
        lc.local_call(
            "GetInstalledChaincodePackage", lb.GetInstalledChaincodePackageArgs(package_id=result.package_id)
        )
    )
    assert got.chaincode_install_package == data


def test_install_twice_is_refused_like_fabric(lc):
    args = lb.InstallChaincodeArgs(chaincode_install_package=ccaas_package("basic_1.0", "127.0.0.1:9999"))
    lc.local_call("InstallChaincode", args)
    err = error_of(lc.local_call, "InstallChaincode", args)
    assert (
        err.status == 500
        and "chaincode already successfully installed (package ID 'basic_1.0:" in err.message
    )


def test_install_of_malformed_package_is_a_400(lc):
    err = error_of(
        lc.local_call, "InstallChaincode", lb.InstallChaincodeArgs(chaincode_install_package=b"junk")
    )
    assert err.status == 400 and "could not parse as a chaincode install package" in err.message


@pytest.mark.parametrize(("org", "user"), [(1, "User1"), (2, "Admin"), (1, "peer")])
def test_install_and_query_installed_need_a_local_msp_admin(lc, org, user):
    # the peer is Org1's: Org2's admin, a client and the peer itself are all refused
    signer, creator = lc.identity(org, user)
    ctx = SccContext(None, None, creator, "Org1MSP", lc.store(1))
    for function, msg in (
        ("InstallChaincode", lb.InstallChaincodeArgs(chaincode_install_package=b"x")),
        ("QueryInstalledChaincodes", lb.QueryInstalledChaincodesArgs()),
    ):
        err = error_of(lc.scc.invoke, function, [msg.SerializeToString()], ctx)
        assert err.status == 403 and "is not an admin of the local MSP Org1MSP" in err.message


def test_query_unknown_installed_package_is_404(lc):
    err = error_of(lc.local_call, "QueryInstalledChaincode", lb.QueryInstalledChaincodeArgs(package_id="x:1"))
    assert err.status == 404 and "could not find chaincode with package id 'x:1'" in err.message


def test_unknown_function_and_bad_arguments(lc):
    err = error_of(lc.local_call, "Nope", lb.QueryInstalledChaincodesArgs())
    assert err.status == 400 and "unknown function 'Nope'" in err.message
    _, creator = lc.identity(1)
    ctx = SccContext(None, None, creator, "Org1MSP", lc.store(1))
    err = error_of(lc.scc.invoke, "QueryInstalledChaincodes", [], ctx)
    assert "require exactly two arguments" in err.message
    err = error_of(lc.scc.invoke, "QueryInstalledChaincode", [b"\xff\xff"], ctx)
    assert err.status == 400 and "failed to decode input arg to 'QueryInstalledChaincode'" in err.message
    err = error_of(lc.scc.invoke, "CheckCommitReadiness", [b""], ctx)
    assert "must be invoked on a channel" in err.message


# ----- approve, readiness, commit -----


def test_readiness_reports_each_org(lc):
    assert dict(readiness(lc).approvals) == {"Org1MSP": False, "Org2MSP": False}
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(), org=1)
    assert dict(readiness(lc).approvals) == {"Org1MSP": True, "Org2MSP": False}
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(package_id="other:1"), org=2)
    # the package id is each org's own choice; it is not part of the agreement
    assert dict(readiness(lc, org=2).approvals) == {"Org1MSP": True, "Org2MSP": True}


def test_readiness_reports_mismatching_fields(lc):
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(), org=1)
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(version="2.0"), org=2)
    result = readiness(lc)
    assert dict(result.approvals) == {"Org1MSP": True, "Org2MSP": False}
    assert list(result.mismatches["Org2MSP"].items) == ["EndorsementInfo"]


def test_readiness_and_commit_need_the_next_sequence(lc):
    err = error_of(readiness, lc, seq=2)
    assert "requested sequence is 2, but new definition must be sequence 1" in err.message
    err = error_of(lc.call, "CommitChaincodeDefinition", commit_args(seq=2))
    assert "requested sequence is 2, but new definition must be sequence 1" in err.message


def test_approve_refuses_a_sequence_beyond_the_next(lc):
    err = error_of(lc.call, "ApproveChaincodeDefinitionForMyOrg", approve_args(seq=2))
    assert "requested sequence 2 is larger than the next available sequence number 1" in err.message


def test_approve_needs_an_admin_of_the_peers_org(lc):
    err = error_of(lc.call, "ApproveChaincodeDefinitionForMyOrg", approve_args(), user="User1")
    assert err.status == 403 and "not an admin of the local MSP Org1MSP" in err.message


def test_commit_without_this_orgs_approval_is_refused(lc):
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(), org=2)
    err = error_of(lc.call, "CommitChaincodeDefinition", commit_args(), org=1)
    assert "chaincode definition not agreed to by this org (Org1MSP)" in err.message


def test_commit_without_enough_approvals_for_lifecycle_endorsement(lc):
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(), org=1)
    err = error_of(lc.call, "CommitChaincodeDefinition", commit_args(), org=1)
    assert "approvals from 1 of 2 orgs" in err.message and "MAJORITY Endorsement" in err.message
    assert committed_definition(lc.state, "basic") is None


def test_commit_then_query_committed(lc):
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(), org=1)
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(package_id="basic_1.0:def"), org=2)
    lc.call("CommitChaincodeDefinition", commit_args(), org=1)
    d = committed_definition(lc.state, "basic")
    assert (d.name, d.sequence, d.version, d.endorsement_plugin, d.validation_plugin) == (
        "basic",
        1,
        "1.0",
        "escc",
        "vscc",
    )
    assert d.validation_parameter == default_validation_parameter()
    assert policy_pb2.ApplicationPolicy.FromString(
        d.validation_parameter
    ).channel_config_policy_reference == ("/Channel/Application/Endorsement")
    assert approved_package_id(lc.state, "Org1MSP", "basic", 1) == "basic_1.0:abc"
    assert approved_package_id(lc.state, "Org2MSP", "basic", 1) == "basic_1.0:def"
    assert approved_package_id(lc.state, "Org2MSP", "basic", 2) is None

    result = lb.QueryChaincodeDefinitionResult.FromString(
        lc.call("QueryChaincodeDefinition", lb.QueryChaincodeDefinitionArgs(name="basic"), commit=False)
    )
    assert (result.sequence, result.version, result.init_required) == (1, "1.0", False)
    assert dict(result.approvals) == {"Org1MSP": True, "Org2MSP": True}
    every = lb.QueryChaincodeDefinitionsResult.FromString(
        lc.call("QueryChaincodeDefinitions", lb.QueryChaincodeDefinitionsArgs(), commit=False)
    )
    assert [(c.name, c.sequence) for c in every.chaincode_definitions] == [("basic", 1)]

    # the same sequence cannot be committed twice
    err = error_of(lc.call, "CommitChaincodeDefinition", commit_args())
    assert "requested sequence is 1, but new definition must be sequence 2" in err.message


def test_query_undefined_chaincode_is_404(lc):
    err = error_of(lc.call, "QueryChaincodeDefinition", lb.QueryChaincodeDefinitionArgs(name="nope"))
    assert err.status == 404 and err.message == "namespace nope is not defined"


def _commit_both(lc, seq=1, version="1.0", package_id="basic_1.0:abc", **kw):
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(seq, version, package_id, **kw), org=1)
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(seq, version, package_id, **kw), org=2)
    lc.call("CommitChaincodeDefinition", commit_args(seq=seq, version=version, **kw), org=1)


def test_reapproving_the_committed_sequence_only_with_identical_parameters(lc):
    _commit_both(lc)
    # identical parameters, new package: allowed (an org moving to a rebuilt package)
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(package_id="basic_1.0:new"), org=1)
    assert approved_package_id(lc.state, "Org1MSP", "basic", 1) == "basic_1.0:new"
    err = error_of(lc.call, "ApproveChaincodeDefinitionForMyOrg", approve_args(version="9"), org=1)
    assert "attempted to redefine the current committed sequence (1) for namespace basic" in err.message


def test_upgrade_with_next_sequence(lc):
    _commit_both(lc)
    err = error_of(lc.call, "ApproveChaincodeDefinitionForMyOrg", approve_args(seq=3))
    assert "requested sequence 3 is larger than the next available sequence number 2" in err.message
    policy = parse_signature_policy("AND('Org1MSP.peer','Org2MSP.peer')")
    param = policy_pb2.ApplicationPolicy(signature_policy=policy).SerializeToString()
    _commit_both(lc, seq=2, version="2.0", validation_parameter=param, init_required=True)
    d = committed_definition(lc.state, "basic")
    assert (d.sequence, d.version, d.init_required) == (2, "2.0", True)
    assert d.application_policy().signature_policy == policy


def test_query_approved_latest_and_by_sequence(lc):
    err = error_of(
        lc.call, "QueryApprovedChaincodeDefinition", lb.QueryApprovedChaincodeDefinitionArgs(name="basic")
    )
    assert err.status == 404 and "could not fetch approved chaincode definition" in err.message
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(), org=1)
    raw = lc.call(
        "QueryApprovedChaincodeDefinition",
        lb.QueryApprovedChaincodeDefinitionArgs(name="basic"),
        commit=False,
    )
    result = lb.QueryApprovedChaincodeDefinitionResult.FromString(raw)
    assert (result.sequence, result.version) == (1, "1.0")
    assert result.source.local_package.package_id == "basic_1.0:abc"
    raw = lc.call(
        "QueryApprovedChaincodeDefinition",
        lb.QueryApprovedChaincodeDefinitionArgs(name="basic", sequence=1),
        commit=False,
    )
    assert lb.QueryApprovedChaincodeDefinitionResult.FromString(raw).sequence == 1
    # Org2 has approved nothing
    err = error_of(
        lc.call,
        "QueryApprovedChaincodeDefinition",
        lb.QueryApprovedChaincodeDefinitionArgs(name="basic"),
        org=2,
    )
    assert "for Org2MSP" in err.message


def test_approval_without_package_reports_unavailable_source(lc):
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(package_id=""), org=1)
    raw = lc.call(
        "QueryApprovedChaincodeDefinition",
        lb.QueryApprovedChaincodeDefinitionArgs(name="basic"),
        commit=False,
    )
    assert lb.QueryApprovedChaincodeDefinitionResult.FromString(raw).source.HasField("unavailable")
    assert approved_package_id(lc.state, "Org1MSP", "basic", 1) is None


def test_collections_are_refused_until_private_data(lc):
    cols = collection_pb2.CollectionConfigPackage(
        config=[
            collection_pb2.CollectionConfig(
                static_collection_config=collection_pb2.StaticCollectionConfig(name="c")
            )
        ]
    )
    err = error_of(lc.call, "ApproveChaincodeDefinitionForMyOrg", approve_args(collections=cols))
    assert "private data is not supported yet" in err.message


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("bad name", "1", "invalid chaincode name 'bad name'"),
        ("_lifecycle", "1", "is the name of a system chaincode"),
        ("basic", "1 0", "invalid chaincode version '1 0'"),
        ("", "1", "chaincode name is required"),
    ],
)
def test_bad_names_and_versions(lc, name, version, message):
    args = lb.ApproveChaincodeDefinitionForMyOrgArgs(name=name, sequence=1, version=version)
    err = error_of(lc.call, "ApproveChaincodeDefinitionForMyOrg", args)
    assert err.status == 400 and message in err.message


def test_channel_queries_follow_the_writers_acl(lc):
    # a peer identity is a channel Reader but not a Writer (Fabric's default _lifecycle ACLs)
    err = error_of(
        lc.call, "CheckCommitReadiness", lb.CheckCommitReadinessArgs(name="basic", sequence=1), user="peer"
    )
    assert err.status == 403 and "/Channel/Application/Writers" in err.message
    lc.call(
        "CheckCommitReadiness",
        lb.CheckCommitReadinessArgs(name="basic", sequence=1, version="1"),
        user="User1",
    )


# ----- what validation enforces on _lifecycle writes -----


def test_approval_writes_only_the_orgs_keys_and_commit_only_channel_keys(lc):
    keys = lc.written_keys("ApproveChaincodeDefinitionForMyOrg", approve_args(), org=2)
    assert keys and all(k.startswith("orgs/Org2MSP/") for k in keys)
    assert {format_signature_policy(validation_policy_for_lifecycle_write(lc.state, k)) for k in keys} == {
        "OR('Org2MSP.peer')"
    }
    _commit_both(lc)
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(seq=2), org=1)
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(seq=2), org=2)
    keys = lc.written_keys("CommitChaincodeDefinition", commit_args(seq=2))
    assert keys and all(k.startswith("namespaces/") for k in keys)
    assert {validation_policy_for_lifecycle_write(lc.state, k) for k in keys} == {LIFECYCLE_ENDORSEMENT}


def test_commit_reads_every_orgs_approval(lc):
    _commit_both(lc)
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(seq=2), org=1)
    lc.call("ApproveChaincodeDefinitionForMyOrg", approve_args(seq=2), org=2)
    signer, creator = lc.identity(1)
    sim = lc.simulator("txreads")
    lc.scc.invoke(
        "CommitChaincodeDefinition",
        [commit_args(seq=2).SerializeToString()],
        SccContext(sim, lc.channel, creator, "Org1MSP", lc.store(1)),
    )
    reads = {r.key for ns in parse_rwset(sim.results().SerializeToString()) for r in ns.kv.reads}
    # a concurrent change of any approval or of the sequence makes the commit an MVCC conflict
    assert "namespaces/fields/basic/Sequence" in reads
    assert {"orgs/Org1MSP/namespaces/metadata/basic#2", "orgs/Org2MSP/namespaces/metadata/basic#2"} <= reads


def _signed(lc, org, user, data=b"endorsed payload"):
    signer, _ = lc.identity(org, user)
    return SignedData(data, signer.serialized, signer.sign(data))


def test_org_approval_policy_needs_that_orgs_peer(lc):
    config, key = lc.channel.config, "orgs/Org1MSP/namespaces/metadata/basic#1"
    evaluate_lifecycle_write(config, key, [_signed(lc, 1, "peer")])
    with pytest.raises(PolicyError):
        evaluate_lifecycle_write(config, key, [_signed(lc, 2, "peer")])
    with pytest.raises(PolicyError):
        evaluate_lifecycle_write(config, key, [_signed(lc, 1, "Admin")])
    with pytest.raises(PolicyError):  # an org that is not in the channel
        evaluate_lifecycle_write(config, "orgs/Org9MSP/namespaces/metadata/basic#1", [_signed(lc, 1, "peer")])


def test_commit_policy_is_lifecycle_endorsement_majority(lc):
    config, key = lc.channel.config, "namespaces/fields/basic/Sequence"
    with pytest.raises(PolicyError):
        evaluate_lifecycle_write(config, key, [_signed(lc, 1, "peer")])
    evaluate_lifecycle_write(config, key, [_signed(lc, 1, "peer"), _signed(lc, 2, "peer")])


@pytest.mark.parametrize("key", ["junk", "orgs/", "orgs/Org1MSP", "orgs/bad msp/x"])
def test_unknown_lifecycle_keys_fail_validation(lc, key):
    with pytest.raises(LifecycleKeyError):
        validation_policy_for_lifecycle_write(lc.state, key)
    assert issubclass(LifecycleKeyError, PolicyError)


def test_query_installed_reports_references_of_committed_definitions(lc):
    data = ccaas_package("basic_1.0", "127.0.0.1:9999")
    pkg_id = lb.InstallChaincodeResult.FromString(
        lc.local_call("InstallChaincode", lb.InstallChaincodeArgs(chaincode_install_package=data))
    ).package_id
    _commit_both(lc, package_id=pkg_id)

    class Ledger:
        state = lc.state

    class Ch:
        ledger = Ledger()

    raw = lc.local_call(
        "QueryInstalledChaincodes", lb.QueryInstalledChaincodesArgs(), channels={"mychannel": Ch()}
    )
    [cc] = lb.QueryInstalledChaincodesResult.FromString(raw).installed_chaincodes
    assert [(c.name, c.version) for c in cc.references["mychannel"].chaincodes] == [("basic", "1.0")]
