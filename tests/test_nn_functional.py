"""nn.functional behaviours the op harness does not reach: batch norm's running statistics,
dropout's randomness, one_hot's and embedding's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minidl
import minidl.nn.functional as F


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 2)])
def test_batch_norm_updates_running_statistics_like_torch(shape):
    """Training mode updates running mean (biased batch mean) and running var (unbiased batch
    variance) with momentum, in place, over several steps; eval mode then uses them."""
    rng = np.random.default_rng(0)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    m_rm, m_rv = minidl.tensor(rm), minidl.tensor(rv)
    t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
    w, b = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    for _ in range(4):
        x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
        m_out = F.batch_norm(minidl.tensor(x), m_rm, m_rv, minidl.tensor(w), minidl.tensor(b), True, 0.2, 1e-5)
        t_out = torch.nn.functional.batch_norm(
            torch.tensor(x), t_rm, t_rv, torch.tensor(w), torch.tensor(b), True, 0.2, 1e-5
        )
        np.testing.assert_allclose(m_out.numpy(), t_out.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m_rm.numpy(), t_rm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m_rv.numpy(), t_rv.numpy(), rtol=1e-5, atol=1e-6)
    x = rng.standard_normal(shape).astype(np.float32)
    m_eval = F.batch_norm(minidl.tensor(x), m_rm, m_rv, minidl.tensor(w), minidl.tensor(b), False)
    t_eval = torch.nn.functional.batch_norm(torch.tensor(x), t_rm, t_rv, torch.tensor(w), torch.tensor(b), False)
    np.testing.assert_allclose(m_eval.numpy(), t_eval.numpy(), rtol=1e-5, atol=1e-5)


def test_batch_norm_refuses_one_value_per_channel_in_training():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(minidl.ones(1, 3), None, None, training=True)


def test_dropout_scales_kept_values_and_masks_the_gradient():
    """Kept elements are scaled by 1 / (1 - p); the gradient is the same mask, scaled."""
    minidl.manual_seed(3)
    x = minidl.ones(2000, requires_grad=True)
    y = F.dropout(x, p=0.25, training=True)
    kept = y.detach().numpy() != 0
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.75)
    assert 0.70 < kept.mean() < 0.80  # about 1 - p of the elements survive
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 1 / 0.75, 0.0))


def test_dropout_identity_cases_and_seed():
    x = minidl.randn(5, 5)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    minidl.manual_seed(7)
    a = F.dropout(minidl.ones(100), 0.5).numpy()
    minidl.manual_seed(7)
    b = F.dropout(minidl.ones(100), 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


def test_one_hot_matches_torch_and_checks_range():
    labels = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(
        F.one_hot(minidl.tensor(labels)).numpy(), torch.nn.functional.one_hot(torch.tensor(labels)).numpy()
    )
    with pytest.raises(ValueError, match="num_classes"):
        F.one_hot(minidl.tensor([0, 5]), 3)


def test_embedding_padding_row_gets_no_gradient_like_torch():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    idx = np.array([[0, 2, 2], [4, 2, 1]])
    mw, tw = minidl.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    (F.embedding(minidl.tensor(idx), mw, padding_idx=2) ** 2).sum().backward()
    (torch.nn.functional.embedding(torch.tensor(idx), tw, padding_idx=2) ** 2).sum().backward()
    np.testing.assert_allclose(mw.grad.numpy(), tw.grad.numpy(), rtol=1e-6)
    assert np.all(mw.grad.numpy()[2] == 0)
