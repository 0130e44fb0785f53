import pytest

from heddle.tcf import processor, requester, signup
from heddle.tcf.enclave.worker import identity
from heddle.tcf.registry import TcfRegistry
from heddle.tcf.store import SqliteStore


@pytest.fixture(scope="session")
def worker_keys():
    return processor.WorkerKeys.generate()


@pytest.fixture(scope="session")
def other_keys():
    return processor.WorkerKeys.generate()


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path)
    yield s
    s.close()


@pytest.fixture
def registry(store, worker_keys, other_keys):
    reg = TcfRegistry(store)
    with store.transaction():
        reg.worker_register(signup.register_params(identity(worker_keys), b"{}"))
        reg.worker_register(signup.register_params(identity(other_keys), b"{}"))
    return reg


@pytest.fixture
def worker_info(registry, worker_keys):
    return signup.WorkerInfo.from_retrieve(
        worker_keys.worker_id, registry.worker_retrieve({"workerId": worker_keys.worker_id})
    )


@pytest.fixture(scope="session")
def alice():
    return requester.Requester()
