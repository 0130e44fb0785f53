"""ChaincodeSupport with real chaincode processes (fabric-chaincode-python), a real
TxSimulator over SQLite, and real gRPC streams on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import chaincode_pb2

from heddle.chaincode.lifecycle.packages import PackageStore, package
from heddle.chaincode.runtime import ChaincodeError, ChaincodeSupport, ChaincodeTarget, target_from_package
from heddle.common.ports import free_port
from heddle.ledger.simulator import TxSimulator
from heddle.ledger.statedb import Height, SqliteStateDB, UpdateBatch

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asset_transfer_basic" / "chaincode"
CHANNEL = "mychannel"

PROBE_CHAINCODE = textwrap.dedent(
    """
    import asyncio
    import os
    import time

    from fabric_chaincode_python.fabric_contract_api import Contract, ContractChaincode, TransactionContext


    TLS_ENV = {"key": "PROBE_TLS_KEY", "cert": "PROBE_TLS_CERT", "client_ca_certs": "PROBE_TLS_CLIENT_CA"}


    class Probe(Contract):
        async def Ping(self, ctx: TransactionContext) -> str:
            await ctx.get_stub().put_state("pinged", b"yes")
            return str(os.getpid())

        async def Block(self, ctx: TransactionContext) -> str:
            time.sleep(120)  # blocks the chaincode's event loop
            return "never"

        async def Hang(self, ctx: TransactionContext) -> str:
            await ctx.get_stub().get_state("before-hang")
            await asyncio.sleep(120)
            return "never"


    if __name__ == "__main__":
        # fabric-chaincode-python's start() takes TLS files as arguments only (not from CORE_TLS_*)
        tls = {k: os.environ[v] for k, v in TLS_ENV.items() if v in os.environ}
        ContractChaincode.new_chaincode(Probe()).start(**tls)
    """
)


class Ledger:
    """A SQLite state DB plus a tiny commit step: each transaction's writes become a block."""

    def __init__(self, path: Path):
        self.state = SqliteStateDB(path)
        self.height = 0

    def simulator(self, txid: str) -> TxSimulator:
        return TxSimulator(self.state, txid)

    def commit(self, rwset) -> None:
        self.height += 1
        batch = UpdateBatch()
        for ns in rwset.ns_rwset:
            kv = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
            for write in kv.writes:
                if write.is_delete:
                    batch.delete(ns.namespace, write.key, Height(self.height, 0))
                else:
                    batch.put(ns.namespace, write.key, write.value, Height(self.height, 0))
        self.state.apply_batch(batch, Height(self.height, 0))


def kv_set(rwset, ns: str = "basic") -> kv_rwset_pb2.KVRWSet:
    for entry in rwset.ns_rwset:
        if entry.namespace == ns:
            return kv_rwset_pb2.KVRWSet.FromString(entry.rwset)
    return kv_rwset_pb2.KVRWSet()


def args(*values: str) -> chaincode_pb2.ChaincodeInput:
    return chaincode_pb2.ChaincodeInput(args=[v.encode() for v in values])


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(tmp_path / "state.db")
    yield ledger
    ledger.state.close()


@pytest.fixture
def probe_dir(tmp_path) -> Path:
    code = tmp_path / "probe"
    code.mkdir()
    (code / "main.py").write_text(PROBE_CHAINCODE)
    return code


def basic_target() -> ChaincodeTarget:
    return ChaincodeTarget(name="basic", package_id="basic_1.0:0123", kind="process", code_dir=EXAMPLE)


def test_installed_example_package_runs_as_a_local_process_against_the_real_simulator(ledger, tmp_path):
    store = PackageStore(tmp_path / "packages")
    package_id = store.install(package("basic_1.0", "python", EXAMPLE))
    target = target_from_package("basic", store.get(package_id))

    async def run(txid: str, *call: str, commit: bool = True):
        sim = ledger.simulator(txid)
        result = await support.execute(CHANNEL, txid, target, args(*call), sim, None)
        rwset = sim.results()
        if commit and result.response.status < 400:
            ledger.commit(rwset)
        return result.response, kv_set(rwset)

    async def scenario():
        response, kv = await run("tx-init", "InitLedger")
        assert response.status == 200
        assert [w.key for w in kv.writes] == [f"asset{i}" for i in range(1, 7)]
        assert not kv.reads
        assert json.loads(kv.writes[0].value) == {
            "ID": "asset1",
            "Color": "blue",
            "Size": 5,
            "Owner": "Tomoko",
            "AppraisedValue": 300,
        }

        response, kv = await run("tx-create", "CreateAsset", "asset7", "purple", "20", "Ada", "900")
        assert response.status == 200
        assert [(r.key, r.HasField("version")) for r in kv.reads] == [("asset7", False)]
        assert [w.key for w in kv.writes] == ["asset7"]

        response, kv = await run("tx-dup", "CreateAsset", "asset1", "red", "1", "Eve", "1")
        assert response.status == 500 and response.message == "the asset asset1 already exists"

        response, kv = await run("tx-read", "ReadAsset", "asset7")
        assert json.loads(response.payload)["Owner"] == "Ada"
        assert [(r.key, r.version.block_num) for r in kv.reads] == [("asset7", 2)]
        assert not kv.writes

        response, _ = await run("tx-missing", "ReadAsset", "asset99")
        assert response.status == 500 and response.message == "the asset asset99 does not exist"

        response, kv = await run("tx-all", "GetAllAssets")
        assert [a["ID"] for a in json.loads(response.payload)] == [f"asset{i}" for i in range(1, 8)]
        (range_info,) = kv.range_queries_info
        assert range_info.itr_exhausted and len(range_info.raw_reads.kv_reads) == 7

        response, kv = await run("tx-transfer", "TransferAsset", "asset1", "Christopher")
        assert response.payload == b"Tomoko"
        assert json.loads(kv.writes[0].value)["Owner"] == "Christopher"
        assert [r.key for r in kv.reads] == ["asset1"]

    support = ChaincodeSupport(execute_timeout=20, work_dir=tmp_path / "cc")
    asyncio.run(_with_stop(support, scenario()))


def test_concurrent_transactions_run_on_one_chaincode_process(ledger, tmp_path):
    async def scenario():
        sims = {f"tx{i}": ledger.simulator(f"tx{i}") for i in range(8)}
        results = await asyncio.gather(
            *(
                support.execute(
                    CHANNEL, txid, basic_target(), args("CreateAsset", txid, "c", "1", "o", "2"), sim
                )
                for txid, sim in sims.items()
            )
        )
        assert all(r.response.status == 200 for r in results)
        for txid, sim in sims.items():
            assert [w.key for w in kv_set(sim.results()).writes] == [txid]
        assert len(support.running()) == 1

    support = ChaincodeSupport(execute_timeout=20, work_dir=tmp_path / "cc")
    asyncio.run(_with_stop(support, scenario()))


def test_unreachable_service_is_a_clear_error(ledger):
    target = ChaincodeTarget.from_connection(
        "basic", "basic_1:ab", {"address": f"127.0.0.1:{free_port()}", "dial_timeout": "500ms"}
    )

    async def scenario():
        with pytest.raises(
            ChaincodeError, match=r"chaincode basic: could not connect to 127\.0\.0\.1:\d+ within 0\.5s"
        ):
            await support.execute(CHANNEL, "tx1", target, args("Ping"), ledger.simulator("tx1"))

    support = ChaincodeSupport()
    asyncio.run(_with_stop(support, scenario()))


def test_range_query_larger_than_a_response_batch_pages_through_the_shim(ledger, tmp_path):
    batch = UpdateBatch()
    for i in range(250):
        value = {"ID": f"a{i:03d}", "Color": "c", "Size": 1, "Owner": "o", "AppraisedValue": i}
        batch.put("basic", f"a{i:03d}", json.dumps(value).encode(), Height(1, 0))
    ledger.state.apply_batch(batch, Height(1, 0))

    async def scenario():
        sim = ledger.simulator("tx-all")
        result = await support.execute(CHANNEL, "tx-all", basic_target(), args("GetAllAssets"), sim)
        assert len(json.loads(result.response.payload)) == 250
        (info,) = kv_set(sim.results()).range_queries_info
        assert info.itr_exhausted and len(info.raw_reads.kv_reads) == 250

    support = ChaincodeSupport(execute_timeout=20, work_dir=tmp_path / "cc")
    asyncio.run(_with_stop(support, scenario()))


def test_killed_chaincode_fails_the_transaction_then_is_relaunched(ledger, probe_dir, tmp_path):
    target = ChaincodeTarget(name="probe", package_id="probe_1:aa", kind="process", code_dir=probe_dir)

    async def scenario():
        first = await support.execute(CHANNEL, "tx1", target, args("Ping"), ledger.simulator("tx1"))
        pid = int(first.response.payload)
        hang = asyncio.create_task(
            support.execute(CHANNEL, "tx2", target, args("Hang"), ledger.simulator("tx2"))
        )
        await asyncio.sleep(0.5)  # the chaincode is inside Hang now
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(
            ChaincodeError, match=r"chaincode probe: connection lost \(process exited with code -9\)"
        ):
            await asyncio.wait_for(hang, 10)
        again = await support.execute(CHANNEL, "tx3", target, args("Ping"), ledger.simulator("tx3"))
        assert again.response.status == 200 and int(again.response.payload) != pid

    support = ChaincodeSupport(execute_timeout=20, work_dir=tmp_path / "cc")
    asyncio.run(_with_stop(support, scenario()))


def test_hung_chaincode_times_out_and_the_peer_keeps_serving(ledger, probe_dir, tmp_path):
    target = ChaincodeTarget(name="probe", package_id="probe_1:aa", kind="process", code_dir=probe_dir)

    async def scenario():
        with pytest.raises(ChaincodeError, match=r"^chaincode probe: timed out after 1\.5s$"):
            await support.execute(CHANNEL, "tx1", target, args("Hang"), ledger.simulator("tx1"))
        ok = await support.execute(CHANNEL, "tx2", target, args("Ping"), ledger.simulator("tx2"))
        assert ok.response.status == 200

    support = ChaincodeSupport(execute_timeout=1.5, work_dir=tmp_path / "cc")
    asyncio.run(_with_stop(support, scenario()))


def test_stuck_chaincode_process_is_replaced(ledger, probe_dir, tmp_path):
    target = ChaincodeTarget(name="probe", package_id="probe_1:aa", kind="process", code_dir=probe_dir)

    async def scenario():
        first = await support.execute(CHANNEL, "tx0", target, args("Ping"), ledger.simulator("tx0"))
        with pytest.raises(ChaincodeError, match="timed out after 1s"):
            await support.execute(CHANNEL, "tx1", target, args("Block"), ledger.simulator("tx1"))
        with pytest.raises(ChaincodeError, match="not responding .* will be restarted"):
            await support.execute(CHANNEL, "tx2", target, args("Ping"), ledger.simulator("tx2"))
        again = await support.execute(CHANNEL, "tx3", target, args("Ping"), ledger.simulator("tx3"))
        assert again.response.status == 200 and again.response.payload != first.response.payload

    support = ChaincodeSupport(execute_timeout=1, work_dir=tmp_path / "cc")
    asyncio.run(_with_stop(support, scenario()))


def test_chaincode_that_cannot_start_reports_its_exit_and_log(probe_dir, ledger, tmp_path):
    (probe_dir / "main.py").write_text("raise SystemExit('missing configuration FOO')\n")
    target = ChaincodeTarget(name="probe", package_id="probe_1:aa", kind="process", code_dir=probe_dir)

    async def scenario():
        with pytest.raises(
            ChaincodeError, match=r"(?s)process exited with code 1 .*missing configuration FOO"
        ):
            await support.execute(CHANNEL, "tx1", target, args("Ping"), ledger.simulator("tx1"))

    support = ChaincodeSupport(execute_timeout=5, launch_timeout=10, work_dir=tmp_path / "cc")
    asyncio.run(_with_stop(support, scenario()))


def test_chaincode_as_a_service_over_mutual_tls(ledger, probe_dir, tmp_path):
    from heddle.msp.cryptogen import generate_default_network

    org = generate_default_network(tmp_path / "crypto", peer_orgs=1).org("Org1")
    server, client = org.node("peer0"), org.user("User1")
    port = free_port()
    env = dict(
        os.environ,
        CHAINCODE_ID="probe_1:aa",
        CHAINCODE_SERVER_ADDRESS=f"127.0.0.1:{port}",
        PROBE_TLS_KEY=str(server.tls_key),
        PROBE_TLS_CERT=str(server.tls_cert),
        PROBE_TLS_CLIENT_CA=str(server.tls_ca),
    )
    proc = subprocess.Popen(
        [sys.executable, str(probe_dir / "main.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    connection = {
        "address": f"127.0.0.1:{port}",
        "dial_timeout": "10s",
        "tls_required": True,
        "client_auth_required": True,
        "client_key": client.tls_key.read_text(),
        "client_cert": client.tls_cert.read_text(),
        "root_cert": server.tls_ca.read_text(),
    }
    target = ChaincodeTarget.from_connection("probe", "probe_1:aa", connection)

    async def scenario():
        sim = ledger.simulator("tx1")
        result = await support.execute(CHANNEL, "tx1", target, args("Ping"), sim)
        assert int(result.response.payload) == proc.pid
        assert [w.key for w in kv_set(sim.results(), "probe").writes] == ["pinged"]

    support = ChaincodeSupport(execute_timeout=10)
    try:
        asyncio.run(_with_stop(support, scenario()))
    finally:
        proc.kill()
        proc.wait()


async def _with_stop(support: ChaincodeSupport, scenario):
    try:
        await scenario
    finally:
        await support.stop()
