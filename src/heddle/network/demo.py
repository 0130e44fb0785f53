"""The ledger-core demo: a local network, signed transactions through ordering and commit,
and a summary of what each peer's ledger holds.

Chaincode and endorsement are not part of the ledger core yet, so the demo's client writes
its read/write sets itself; every other check (signatures, MSPs, txids, block signatures,
hash chain) is the real one.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc
from fabric_protos.common import common_pb2, ledger_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import chaincode_pb2, events_pb2, proposal_pb2, proposal_response_pb2, transaction_pb2

from heddle.common.tls import client_credentials
from heddle.msp import load_signing_identity
from heddle.network.local import LocalNetwork, NetworkSpec
from heddle.peer.blockpuller import seek_envelope
from heddle.protocol import (
    compute_txid,
    create_proposal,
    make_channel_header,
    make_signature_header,
    sign_envelope,
    sign_proposal,
)


def _write_tx(identity, channel: str, writes: dict[str, bytes]) -> tuple[common_pb2.Envelope, str]:
    shdr = make_signature_header(identity.serialized)
    txid = compute_txid(shdr.nonce, shdr.creator)
    chdr = make_channel_header(common_pb2.ENDORSER_TRANSACTION, channel, txid)
    kv = kv_rwset_pb2.KVRWSet(writes=[kv_rwset_pb2.KVWrite(key=k, value=v) for k, v in writes.items()])
    results = rwset_pb2.TxReadWriteSet(
        data_model=rwset_pb2.TxReadWriteSet.KV,
        ns_rwset=[rwset_pb2.NsReadWriteSet(namespace="demo", rwset=kv.SerializeToString())],
    )
    action = proposal_pb2.ChaincodeAction(
        results=results.SerializeToString(),
        response=proposal_response_pb2.Response(status=200),
        chaincode_id=chaincode_pb2.ChaincodeID(name="demo"),
    )
    prp = proposal_response_pb2.ProposalResponsePayload(extension=action.SerializeToString())
    cap = transaction_pb2.ChaincodeActionPayload(
        action=transaction_pb2.ChaincodeEndorsedAction(proposal_response_payload=prp.SerializeToString())
    )
    tx = transaction_pb2.Transaction(
        actions=[
            transaction_pb2.TransactionAction(
                header=shdr.SerializeToString(), payload=cap.SerializeToString()
            )
        ]
    )
    return sign_envelope(identity, chdr, shdr, tx.SerializeToString()), txid


def _say(step: str) -> None:
    print(f"\n== {step}", flush=True)


def run_demo(data_dir: Path | None = None, transactions: int = 200) -> int:
    data = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="heddle-demo-"))
    spec = NetworkSpec(batch_timeout="500ms", max_message_count=50)
    net = LocalNetwork(data, spec)
    _say(f"Generating crypto material, configtx.yaml and the genesis block under {data}")
    net.generate()
    print(f"  organizations: {', '.join(sorted(p.name for p in (data / 'organizations').glob('*/*')))}")
    print(f"  channel '{spec.channel}' genesis block: {net.genesis_path}")
    try:
        _say("Starting orderer.example.com and two peers (TLS on every endpoint)")
        net.start()
        print(f"  orderer {net.orderer_address}; peers {', '.join(net.peer_address(i) for i in range(2))}")
        _say("Joining the orderer (channel participation API) and the peers (cscc JoinChain)")
        net.join()
        user = load_signing_identity(net.user_msp(0), "Org1MSP")
        _say(f"User1@org1.example.com signs and broadcasts {transactions} transactions")
        envs, txids = [], []
        for i in range(transactions):
            env, txid = _write_tx(user, spec.channel, {f"asset{i:04d}": json.dumps({"n": i}).encode()})
            envs.append(env)
            txids.append(txid)
        start = time.monotonic()
        creds = client_credentials([net.orderer_tls_ca.read_bytes()])
        with grpc.secure_channel(net.orderer_address, creds) as ch:
            call = ch.stream_stream(
                "/orderer.AtomicBroadcast/Broadcast",
                request_serializer=common_pb2.Envelope.SerializeToString,
                response_deserializer=ab_pb2.BroadcastResponse.FromString,
            )
            statuses = Counter(common_pb2.Status.Name(r.status) for r in call(iter(envs), timeout=120))
        print(f"  orderer answered: {dict(statuses)}")
        _say("Each peer pulls, verifies and commits the blocks")
        for i in range(2):
            codes, blocks = _follow(net, i, user, set(txids))
            info = _chain_info(net, i, user)
            summary = Counter(transaction_pb2.TxValidationCode.Name(c) for c in codes.values())
            print(
                f"  {net.peer_name(i)}: height {info.height}, {blocks} blocks read, "
                f"transactions {dict(summary)}, current block hash {info.currentBlockHash.hex()[:16]}..."
            )
        print(f"  all committed in {time.monotonic() - start:.1f}s")
        _say("Done. Logs are under " + str(data / "logs"))
        return 0
    finally:
        net.stop()


def _peer_channel(net: LocalNetwork, i: int) -> grpc.Channel:
    return grpc.secure_channel(net.peer_address(i), client_credentials([net.peer_tls_ca(i).read_bytes()]))


def _follow(net, i, identity, txids: set[str]) -> tuple[dict[str, int], int]:
    codes: dict[str, int] = {}
    blocks = 0
    with _peer_channel(net, i) as ch:
        call = ch.stream_stream(
            "/protos.Deliver/DeliverFiltered",
            request_serializer=common_pb2.Envelope.SerializeToString,
            response_deserializer=events_pb2.DeliverResponse.FromString,
        )(iter([seek_envelope(identity, net.spec.channel, 0)]), timeout=120)
        try:
            for resp in call:
                blocks += 1
                for ft in resp.filtered_block.filtered_transactions:
                    if ft.txid in txids:
                        codes[ft.txid] = ft.tx_validation_code
                if len(codes) == len(txids):
                    break
        finally:
            call.cancel()
    return codes, blocks


def _chain_info(net, i, identity) -> ledger_pb2.BlockchainInfo:
    proposal, _ = create_proposal(
        identity.serialized, net.spec.channel, "qscc", [b"GetChainInfo", net.spec.channel.encode()]
    )
    with _peer_channel(net, i) as ch:
        resp = ch.unary_unary(
            "/protos.Endorser/ProcessProposal",
            request_serializer=proposal_pb2.SignedProposal.SerializeToString,
            response_deserializer=proposal_response_pb2.ProposalResponse.FromString,
        )(sign_proposal(proposal, identity.sign), timeout=30)
    return ledger_pb2.BlockchainInfo.FromString(resp.response.payload)
