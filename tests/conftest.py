import pytest

from kernelwright.backends import launches


@pytest.fixture
def private_backend_state(tmp_path, monkeypatch):
    """A compile cache of the test's own and an empty launch record, before and after."""
    monkeypatch.setenv("KERNELWRIGHT_CACHE_DIR", str(tmp_path))
    launches.reset()
    yield
    launches.reset()


@pytest.fixture
def sm90_compiler(tmp_path, monkeypatch):
    """Triton, able to compile for NVIDIA GPUs on this machine (else the test is skipped), compiling into the
    test's own cache: kernels are compiled here, not taken from an earlier run."""
    triton = pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    if "nvidia" not in triton.backends.backends:
        pytest.skip("this Triton has no NVIDIA backend")
    return triton
