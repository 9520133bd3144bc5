"""Corrupt, truncated or hostile blobs must give an error, never a crash."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import NativeError

from pgml_flow.engine.native import compile_model


def _models() -> list[bytes]:
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = x[:, 0] + rng.normal(scale=0.1, size=200)
    return [
        compile_model(xgb.XGBRegressor(n_estimators=5, max_depth=3, n_jobs=1).fit(x, y)),
        compile_model(
            lgb.LGBMRegressor(n_estimators=5, num_leaves=5, verbose=-1, n_jobs=1).fit(x, y)
        ),
        compile_model(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y > 0)),
        compile_model(Ridge().fit(x, y), preprocess={"shift": [1, 2, 3, 4]}),
    ]


def _fix_crc(blob: bytes) -> bytes:
    body = blob[:-4]
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


@pytest.fixture(scope="module")
def blobs() -> list[bytes]:
    return _models()


def test_valid_blobs_parse(native_lib, blobs):
    for blob in blobs:
        native_lib.load(blob)


def test_truncated_and_garbage(native_lib, blobs):
    for blob in blobs:
        for cut in sorted({0, 1, 7, 8, 63, 64, 65, len(blob) // 2, len(blob) - 5, len(blob) - 1}):
            with pytest.raises(NativeError):
                native_lib.load(blob[:cut])
        with pytest.raises(NativeError, match="length"):
            native_lib.load(blob + b"\0")
    with pytest.raises(NativeError, match="magic"):
        native_lib.load(b"X" * 200)
    bad_version = bytearray(blobs[0])
    bad_version[8] = 9
    with pytest.raises(NativeError, match="version"):
        native_lib.load(_fix_crc(bytes(bad_version)))


def test_bit_flips_caught_by_checksum(native_lib, blobs):
    rng = np.random.default_rng(1)
    for blob in blobs:
        for pos in rng.integers(0, len(blob) - 4, size=50):
            mutated = bytearray(blob)
            mutated[pos] ^= 1 << int(rng.integers(0, 8))
            with pytest.raises(NativeError):
                native_lib.load(bytes(mutated))


def test_structural_fuzz_never_crashes(native_lib, blobs):
    """Mutations with a valid checksum: either rejected or safe to evaluate."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 4))
    x[0, 1] = np.nan
    accepted = 0
    for blob in blobs:
        for _ in range(400):
            mutated = bytearray(blob)
            for _ in range(int(rng.integers(1, 4))):
                pos = int(rng.integers(0, len(blob) - 4))
                mutated[pos] = int(rng.integers(0, 256))
            try:
                model = native_lib.load(_fix_crc(bytes(mutated)))
            except NativeError:
                continue
            accepted += 1
            if model.num_features == 4:
                if model.has_scalar:
                    model.predict(x)
                if model.width:
                    model.outputs(x)
    assert accepted > 0  # values like thresholds and leaves may change harmlessly
