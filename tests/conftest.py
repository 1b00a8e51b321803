import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digits_fl_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small digits build (6 device shards, no images) shared by the federated-run tests."""
    from fl_setup import make_digits_build

    return make_digits_build(tmp_path_factory.mktemp("digits_fl"), devices=6, per_device=60)


@pytest.fixture(scope="session")
def digits_fl_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small digits build with 4 secure-only device images (QEMU tests of federated runs)."""
    from fl_setup import make_digits_build

    return make_digits_build(tmp_path_factory.mktemp("digits_fl_images"), devices=4, per_device=60, images=True,
                             head_init="pretrained", secure_only=True)


@pytest.fixture(scope="session")
def secagg_test_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build of 5 TEST images (mps2-an386: SA_ENCODED compiled in) of a small digits
    student, shared by the QEMU SecAgg tests (test_secagg_qemu, test_flower_qemu): built once
    per session."""
    from fl_setup import make_digits_setup
    from tinyfed_toolchain.build import BuildOptions, run_build

    root = tmp_path_factory.mktemp("secagg_test_images")
    setup = make_digits_setup(root / "setup")
    (root / "m.tflite").write_bytes(setup.tflite)
    run_build(BuildOptions(tflite=root / "m.tflite", dataset="digits", out_dir=root / "b", board="mps2-an386",
                           devices=5, test_images=True),
              log=lambda s: None)
    return root / "b"
