"""Shared test setup: torch is the oracle, pinned to two threads; every test starts seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minidl

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    minidl.manual_seed(0)
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
