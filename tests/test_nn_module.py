"""``nn.Module`` itself, against torch's ``nn.Module``: registration, traversal order and
de-duplication, ``state_dict`` / ``load_state_dict``, train/eval, ``apply``, ``to``, hooks,
``repr``, ``zero_grad``, and the containers (``Sequential``, ``ModuleList``, ``ModuleDict``).

Most tests build the *same* model in both libraries (a function of ``lib``) and compare what
the two report: names, order, messages, printed text.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch

import minidl
from minidl import nn


class Block:
    """A factory for a custom module class in either library (the class must subclass that
    library's ``Module``)."""

    @staticmethod
    def make(lib):
        class Block(lib.Module):
            def __init__(self):
                super().__init__()
                self.conv = lib.Conv2d(3, 4, 3, padding=1)
                self.bn = lib.BatchNorm2d(4)
                self.act = lib.ReLU()
                self.scale = lib.Parameter((minidl if lib is nn else torch).ones(4))
                self.register_buffer("steps", (minidl if lib is nn else torch).zeros(1))
                self.register_buffer("scratch", (minidl if lib is nn else torch).zeros(2), persistent=False)

            def forward(self, x):
                return self.act(self.bn(self.conv(x))) * self.scale.reshape(1, -1, 1, 1)

        return Block()


def model(lib):
    """A nested model: a custom block, containers of every kind, and a head."""

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.block = Block.make(lib)
            self.pool = lib.Sequential(lib.AdaptiveAvgPool2d(1), lib.Flatten())
            self.heads = lib.ModuleList([lib.Linear(4, 4), lib.Linear(4, 4), lib.Dropout(0.1), lib.Linear(4, 2)])
            self.extra = lib.ModuleDict({"norm": lib.LayerNorm(2), "out": lib.Linear(2, 2, bias=False)})

        def forward(self, x):
            x = self.pool(self.block(x))
            for layer in self.heads:
                x = layer(x)
            return self.extra["out"](self.extra["norm"](x))

    return Net()


def numpy_state(t_module) -> dict:
    return {k: v.detach().numpy().copy() for k, v in t_module.state_dict().items()}


# ---- registration ----------------------------------------------------------------------------


def test_assignment_registers_parameters_buffers_and_children():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(minidl.ones(2))
            self.fc = nn.Linear(2, 3)
            self.register_buffer("count", minidl.zeros(1))
            self.plain = minidl.ones(2)  # a plain tensor is just an attribute
            self.note = "text"

    net = Net()
    assert list(net._parameters) == ["w"]
    assert list(net._modules) == ["fc"]
    assert list(net._buffers) == ["count"]
    assert [n for n, _ in net.named_parameters()] == ["w", "fc.weight", "fc.bias"]
    assert list(net.state_dict()) == ["w", "count", "fc.weight", "fc.bias"]
    assert all(isinstance(p, nn.Parameter) for p in net.parameters())
    assert not isinstance(net.plain, nn.Parameter)
    assert net.w is net._parameters["w"]  # one object, reachable both ways
    del net.fc
    assert "fc" not in net._modules and not hasattr(net, "fc")
    net.w = None  # a registered parameter may be set to None, as in torch
    assert net._parameters["w"] is None and list(net.parameters()) == []


def test_registration_errors_name_the_problem():
    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(minidl.ones(1))

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Early()
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="nn.Parameter"):
        m.weight = minidl.ones(2, 2)
    with pytest.raises(KeyError, match="\\."):
        m.register_buffer("a.b", minidl.ones(1))
    with pytest.raises(KeyError, match="already exists"):
        m.register_parameter("in_features", nn.Parameter(minidl.ones(1)))
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("extra", minidl.ones(1))
    with pytest.raises(TypeError, match="Tensor or None"):
        m.register_buffer("extra", np.ones(1))


def test_buffer_assignment_and_non_persistent_buffers():
    m, t = Block.make(nn), Block.make(torch.nn)
    assert list(m.state_dict()) == list(t.state_dict())  # 'scratch' is not persistent
    assert [n for n, _ in m.named_buffers()] == [n for n, _ in t.named_buffers()]
    m.steps = minidl.ones(1)  # assigning a tensor to a buffer name replaces the buffer
    assert m._buffers["steps"] is m.steps
    m.fresh = nn.Buffer(minidl.zeros(3), persistent=False)
    assert "fresh" in m._buffers and "fresh" not in m.state_dict()


# ---- traversal -------------------------------------------------------------------------------


def test_named_members_order_matches_torch():
    m, t = model(nn), model(torch.nn)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in m.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in m.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in m.named_children()] == [n for n, _ in t.named_children()]
    assert [type(c).__name__ for c in m.children()] == [type(c).__name__ for c in t.children()]
    assert [n for n, _ in m.block.named_parameters(prefix="b", recurse=False)] == ["b.scale"]
    assert list(m.state_dict()) == list(t.state_dict())


def _shared(lib):
    """Two layers sharing one weight (tied embeddings) and one module used twice."""
    net = lib.Module()
    net.a = lib.Linear(3, 3)
    net.b = lib.Linear(3, 3)
    net.b.weight = net.a.weight
    net.c = net.a
    return net


def test_shared_parameters_and_modules_are_deduplicated_like_torch():
    m, t = _shared(nn), _shared(torch.nn)
    for kwargs in ({}, {"remove_duplicate": False}):
        assert [n for n, _ in m.named_parameters(**kwargs)] == [n for n, _ in t.named_parameters(**kwargs)]
        assert [n for n, _ in m.named_modules(**kwargs)] == [n for n, _ in t.named_modules(**kwargs)]
    assert len(list(m.parameters())) == 3  # a.weight, a.bias, b.bias
    assert list(m.state_dict()) == list(t.state_dict())  # the state dict lists every path


def test_get_submodule_and_get_parameter():
    m = model(nn)
    assert m.get_submodule("heads.1") is m.heads[1]
    assert m.get_parameter("extra.out.weight") is m.extra["out"].weight
    assert m.get_submodule("") is m
    with pytest.raises(AttributeError, match="nothing"):
        m.get_submodule("block.nothing")


# ---- state_dict and load_state_dict ----------------------------------------------------------


def test_load_torch_state_dict_then_outputs_agree():
    m, t = model(nn), model(torch.nn)
    m.eval()
    t.eval()
    assert m.load_state_dict(numpy_state(t)) == ([], [])
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    m_out, t_out = m(minidl.tensor(x)), t(torch.tensor(x))
    np.testing.assert_allclose(m_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    # tensors work as values too, and the state dict shares storage with the module
    m2 = model(nn)
    m2.load_state_dict(m.state_dict())
    assert np.array_equal(m2.heads[0].weight.detach().numpy(), m.heads[0].weight.detach().numpy())
    m.state_dict()["heads.0.bias"]._data[0] = 7.0
    assert m.heads[0].bias.detach().numpy()[0] == 7.0


def test_load_state_dict_keeps_parameter_identity_and_casts():
    m = nn.Linear(2, 2)
    weight = m.weight
    m.load_state_dict({"weight": np.ones((2, 2), np.float64), "bias": np.zeros(2, np.int64)})
    assert m.weight is weight and m.weight.dtype is minidl.float32
    assert np.all(m.weight.detach().numpy() == 1)


def test_load_state_dict_assign_takes_the_tensors_themselves():
    m = nn.BatchNorm1d(2)
    weight = minidl.tensor([2.0, 3.0], dtype=minidl.float64)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    state["weight"] = weight
    m.load_state_dict(state, assign=True)
    assert isinstance(m.weight, nn.Parameter) and m.weight.requires_grad
    assert m.weight.dtype is minidl.float64 and m._parameters["weight"] is m.weight
    weight._data[0] = 5.0  # shared, not copied
    assert m.weight.detach().numpy()[0] == 5.0
    assert m.running_mean is state["running_mean"] and m._buffers["running_mean"] is m.running_mean
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]  # order kept


def test_load_state_dict_strict_errors_match_torch():
    m, t = nn.Linear(4, 3), torch.nn.Linear(4, 3)
    state = numpy_state(t)
    del state["bias"]
    state["extra"] = np.ones(1)
    with pytest.raises(RuntimeError) as m_err:
        m.load_state_dict(state)
    with pytest.raises(RuntimeError) as t_err:
        t.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    for text in ('Missing key(s) in state_dict: "bias"', 'Unexpected key(s) in state_dict: "extra"'):
        assert text in str(m_err.value) and text in str(t_err.value)
    assert str(m_err.value).startswith("Error(s) in loading state_dict for Linear:")
    before = m.weight.detach().numpy().copy()
    with pytest.raises(RuntimeError):
        m.load_state_dict({**state, "weight": np.zeros((3, 4))})
    assert np.array_equal(m.weight.detach().numpy(), before)  # nothing copied after an error


def test_load_state_dict_non_strict_returns_the_same_keys_as_torch():
    m, t = model(nn), model(torch.nn)
    state = numpy_state(t)
    del state["heads.0.weight"], state["block.bn.running_var"]
    state["heads.9.weight"] = np.ones(2)
    m_result = m.load_state_dict(state, strict=False)
    t_result = t.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
    assert m_result.missing_keys == t_result.missing_keys
    assert m_result.unexpected_keys == t_result.unexpected_keys
    np.testing.assert_array_equal(m.heads[1].weight.detach().numpy(), state["heads.1.weight"])


def test_shape_mismatch_raises_even_when_not_strict_and_copies_nothing():
    m = nn.Linear(4, 3)
    bias = m.bias.detach().numpy().copy()
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for weight: .*\(3, 5\).*\(3, 4\)"):
            m.load_state_dict({"weight": np.ones((3, 5)), "bias": np.zeros(3)}, strict=strict)
    with pytest.raises(RuntimeError, match="size mismatch"):
        torch.nn.Linear(4, 3).load_state_dict({"weight": torch.ones(3, 5), "bias": torch.zeros(3)}, strict=False)
    np.testing.assert_array_equal(m.bias.detach().numpy(), bias)


# ---- modes, apply, to ------------------------------------------------------------------------


def test_train_and_eval_propagate_to_every_submodule():
    m = model(nn)
    assert all(sub.training for sub in m.modules())
    assert m.eval() is m
    assert not any(sub.training for sub in m.modules())
    m.heads.train()
    assert m.heads[2].training and not m.block.bn.training
    m.train()
    assert all(sub.training for sub in m.modules())
    with pytest.raises(ValueError, match="bool"):
        m.train("yes")


def test_eval_changes_dropout_and_batch_norm_behaviour():
    m = nn.Sequential(nn.BatchNorm1d(3), nn.Dropout(0.5))
    x = minidl.randn(8, 3) * 4 + 2
    m.eval()
    out = m(x)  # running stats (0, 1) and no dropout: x / sqrt(1 + eps)
    np.testing.assert_allclose(out.detach().numpy(), x.numpy() / np.sqrt(1 + 1e-5), rtol=1e-6)
    m.train()
    out = m(x)
    assert (out.detach().numpy() == 0).any()
    assert int(m[0].num_batches_tracked.item()) == 1


def test_apply_visits_children_first_like_torch():
    m_seen, t_seen = [], []
    model(nn).apply(lambda mod: m_seen.append(type(mod).__name__))
    model(torch.nn).apply(lambda mod: t_seen.append(type(mod).__name__))
    assert m_seen == t_seen


def test_apply_for_custom_initialization():
    def init_weights(mod):
        if isinstance(mod, nn.Linear):
            nn.init.constant_(mod.weight, 0.5)

    m = model(nn)
    assert m.apply(init_weights) is m
    linears = [layer for layer in m.modules() if isinstance(layer, nn.Linear)]
    assert len(linears) == 4 and all(np.all(layer.weight.detach().numpy() == 0.5) for layer in linears)


def test_to_dtype_keeps_identity_and_integer_buffers():
    m = model(nn)
    weight = m.heads[0].weight
    m.heads[0].weight.grad = minidl.ones(4, 4)
    assert m.to(minidl.float64) is m
    assert m.heads[0].weight is weight  # parameters keep their identity (an optimizer still holds them)
    assert all(p.dtype is minidl.float64 for p in m.parameters())
    assert m.heads[0].weight.grad.dtype is minidl.float64
    assert m.block.bn.running_mean.dtype is minidl.float64
    assert m.block.bn.num_batches_tracked.dtype is minidl.int64  # counters stay integers, as in torch
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    m.float()
    assert all(p.dtype is minidl.float32 for p in m.parameters())
    m.double()
    out = m(minidl.randn(2, 3, 4, 4, dtype=minidl.float64))
    assert out.dtype is minidl.float64
    with pytest.raises(TypeError, match="floating point"):
        m.to(minidl.int64)


def test_factory_dtype_matches_to_dtype():
    a = nn.Conv2d(2, 3, 3, dtype=minidl.float64)
    b = nn.BatchNorm1d(3, dtype="float64")
    assert a.weight.dtype is a.bias.dtype is minidl.float64
    assert b.running_var.dtype is minidl.float64 and b.num_batches_tracked.dtype is minidl.int64


def test_requires_grad_and_zero_grad():
    m = nn.Linear(3, 2)
    m(minidl.randn(4, 3)).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert np.all(m.weight.grad.numpy() == 0) and m.weight.grad is not None
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None  # set_to_none=True is the default, as in torch
    m.requires_grad_(False)
    assert not m(minidl.randn(4, 3)).requires_grad


# ---- hooks -----------------------------------------------------------------------------------


def test_forward_hooks_see_and_replace_inputs_and_outputs():
    m = nn.Linear(2, 2)
    calls = []

    def pre(module, inputs):
        calls.append(("pre", module))
        return inputs[0] * 0.0  # a single value is wrapped into a tuple

    def post(module, inputs, output):
        calls.append(("post", tuple(inputs[0].shape)))
        return output + 1.0

    h1 = m.register_forward_pre_hook(pre)
    h2 = m.register_forward_hook(post)
    out = m(minidl.randn(3, 2))
    np.testing.assert_allclose(out.detach().numpy(), np.broadcast_to(m.bias.detach().numpy() + 1, (3, 2)), rtol=1e-6)
    assert calls == [("pre", m), ("post", (3, 2))]
    h1.remove()
    h2.remove()
    x = minidl.randn(3, 2)
    np.testing.assert_array_equal(m(x).detach().numpy(), nn.functional.linear(x, m.weight, m.bias).detach().numpy())
    assert len(calls) == 2


def test_forward_hook_returning_none_keeps_the_output():
    m = nn.ReLU()
    seen = []
    m.register_forward_hook(lambda mod, inp, out: seen.append(out))
    x = minidl.randn(4)
    out = m(x)
    assert seen[0] is out


# ---- repr ------------------------------------------------------------------------------------


def test_repr_tree_is_torchs_text():
    assert repr(model(nn)) == repr(model(torch.nn))


def test_repr_of_containers_and_runs_like_torch():
    for build in (
        lambda lib: lib.ModuleList(
            [lib.ReLU(), lib.ReLU(), lib.ReLU(), lib.Tanh(), lib.Linear(2, 2), lib.Linear(2, 2)]
        ),
        lambda lib: lib.ModuleList([lib.Sequential(lib.Linear(2, 2), lib.ReLU()) for _ in range(3)]),
        lambda lib: lib.ModuleList(),
        lambda lib: lib.Sequential(),
        lambda lib: lib.ModuleDict({"a": lib.Identity(), "b": lib.Sequential(lib.Linear(1, 1))}),
        lambda lib: lib.Module(),
    ):
        assert repr(build(nn)) == repr(build(torch.nn))


# ---- copies ----------------------------------------------------------------------------------


def test_deepcopy_gives_independent_parameters():
    m = model(nn)
    c = copy.deepcopy(m)
    assert [n for n, _ in c.named_parameters()] == [n for n, _ in m.named_parameters()]
    assert all(isinstance(p, nn.Parameter) for p in c.parameters())
    assert c.heads[0].weight is c.heads[0]._parameters["weight"]
    c.heads[0].weight._data[...] = 0
    assert not np.all(m.heads[0].weight.detach().numpy() == 0)


# ---- containers ------------------------------------------------------------------------------


def _seq(lib):
    return lib.Sequential(lib.Linear(1, 2), lib.ReLU(), lib.Linear(2, 3), lib.Tanh())


def test_sequential_indexing_slicing_append_and_delete_like_torch():
    m, t = _seq(nn), _seq(torch.nn)
    assert type(m[-1]).__name__ == type(t[-1]).__name__ == "Tanh"
    assert repr(m[1:3]) == repr(t[1:3])
    assert isinstance(m[1:3], nn.Sequential) and m[1:3][0] is m[1]
    with pytest.raises(IndexError):
        m[4]
    del m[1]
    del t[1]
    assert list(m._modules) == list(t._modules) == ["0", "1", "2"]
    m.append(nn.Sigmoid())
    t.append(torch.nn.Sigmoid())
    m.insert(1, nn.Identity())
    t.insert(1, torch.nn.Identity())
    del m[::2]
    del t[::2]
    assert repr(m) == repr(t)
    m[0] = nn.ReLU()
    assert isinstance(m[0], nn.ReLU) and len(m) == 2
    assert [type(x).__name__ for x in m] == ["ReLU", "Tanh"]


def test_sequential_runs_its_modules_in_order():
    m = nn.Sequential(OrderedDict([("scale", nn.Linear(1, 1, bias=False)), ("act", nn.ReLU())]))
    nn.init.constant_(m.scale.weight, -2.0)
    np.testing.assert_array_equal(m(minidl.tensor([[1.0], [-1.0]])).detach().numpy(), [[0.0], [2.0]])
    assert list(m.state_dict()) == ["scale.weight"]
    with pytest.raises(KeyError, match="already exists"):  # a name that is a method, as torch refuses
        nn.Sequential(OrderedDict([("double", nn.ReLU())]))


def test_module_list_indexing_slicing_append_extend_insert_delete_like_torch():
    def build(lib):
        return lib.ModuleList([lib.Linear(1, 1), lib.ReLU(), lib.Tanh()])

    m, t = build(nn), build(torch.nn)
    assert isinstance(m[-1], nn.Tanh) and isinstance(m[0:2], nn.ModuleList) and m[0:2][1] is m[1]
    m.append(nn.Sigmoid()).extend([nn.Identity(), nn.ReLU()])
    t.append(torch.nn.Sigmoid()).extend([torch.nn.Identity(), torch.nn.ReLU()])
    m.insert(0, nn.ELU())
    t.insert(0, torch.nn.ELU())
    del m[2]
    del t[2]
    del m[-2:]
    del t[-2:]
    m[1] = nn.GELU()
    t[1] = torch.nn.GELU()
    assert repr(m) == repr(t)
    assert list(m._modules) == list(t._modules)
    m += [nn.ReLU()]
    assert len(m) == 5 and isinstance(m[4], nn.ReLU)
    with pytest.raises(IndexError):
        m[5]
    with pytest.raises(TypeError, match="iterable"):
        m.extend(nn.ReLU())


def test_module_list_registers_parameters():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert [n for n, _ in layers.named_parameters()] == [f"{i}.{p}" for i in range(3) for p in ("weight", "bias")]


def test_module_dict_operations_like_torch():
    def build(lib):
        return lib.ModuleDict({"fc": lib.Linear(2, 2), "act": lib.ReLU()})

    m, t = build(nn), build(torch.nn)
    m["out"] = nn.Linear(2, 1)
    t["out"] = torch.nn.Linear(2, 1)
    del m["act"]
    del t["act"]
    assert list(m.keys()) == list(t.keys()) == ["fc", "out"]
    assert "fc" in m and "act" not in m and len(m) == 2
    m.update([("act", nn.Tanh())])
    t.update([("act", torch.nn.Tanh())])
    assert repr(m) == repr(t)
    assert isinstance(m.pop("act"), nn.Tanh) and list(m) == ["fc", "out"]
    assert [n for n, _ in m.named_parameters()] == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    m.clear()
    assert len(m) == 0 and list(m.parameters()) == []


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(minidl.ones(1))
