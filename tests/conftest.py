import pytest

from kernelwright.backends import launches


@pytest.fixture
def private_backend_state(tmp_path, monkeypatch):
    """A compile cache of the test's own and an empty launch record, before and after."""
    monkeypatch.setenv("KERNELWRIGHT_CACHE_DIR", str(tmp_path))
    launches.reset()
    yield
    launches.reset()
