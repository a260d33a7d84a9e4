"""Every parameter that gets a gradient in eager PyTorch gets the same one under
`thunder.jit`, however the graph splits into compiled and eager pieces (issue 20)."""

import copy

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder import _jit

from conftest import devices, unsupported

def _split(x):
    # A piece thunder does not compile (`conftest.unsupported`): the graph splits there.
    return unsupported(x, -1)


def _check(model, *args, split=True, rtol=1e-5, fallback="eager"):
    """Eager against thunder.jit on copies of `model`: the outputs and every gradient (the
    unsupported pieces run by `fallback`)."""
    eager = model
    jm = thunder.jit(copy.deepcopy(model), fallback=fallback)
    want = eager(*args)
    want.sum().backward() if want.dim() else want.backward()
    got = jm(*args)
    got.sum().backward() if got.dim() else got.backward()
    torch.testing.assert_close(got, want)
    stats = thunder.compile_stats(jm)
    assert stats["compiled_graphs"] > 0, stats
    if split:
        assert stats[f"{fallback}_graphs"] > 0, stats
        assert any("cummax_values" in u for u in stats["unsupported"]), stats
    wants = dict(eager.named_parameters())
    gots = dict(jm.named_parameters())
    assert wants.keys() == gots.keys()
    for n, p in wants.items():
        g = gots[n].grad
        if p.grad is None:
            assert g is None, f"{n}: a gradient eager does not give"
            continue
        assert g is not None, f"{n}: no gradient under thunder.jit (eager gives one)"
        torch.testing.assert_close(g, p.grad, rtol=rtol, atol=1e-6, msg=lambda m: f"{n}: {m}")
    return stats


class NoGradInside(torch.nn.Module):
    """A parameter used before a `torch.no_grad()` region (transformers' rotary embedding):
    the region's pieces must not run before the piece that reads the parameter."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.lin = torch.nn.Linear(8, 8)
        self.register_buffer("freq", torch.linspace(0.1, 1.0, 8))

    def forward(self, idx):
        h = self.emb(idx)
        with torch.no_grad():
            pos = torch.arange(idx.shape[-1], dtype=torch.float32)
            table = (pos[:, None] * self.freq[None, :]).cos()
        return (self.lin(h) * table).sum()


class Tied(torch.nn.Module):
    """Input and output embeddings share one weight, read by pieces on both sides of a split
    and of a `torch.no_grad()` region (as in transformers' Llama with tied embeddings, whose
    shared weight got only the output head's part of its gradient)."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(40, 16)
        self.mid = torch.nn.Linear(16, 16)

    def forward(self, idx):
        h = self.emb(idx)
        with torch.no_grad():
            scale = torch.arange(16, dtype=torch.float32).cos()
        h = _split(self.mid(h) * scale)
        logits = F.linear(h, self.emb.weight)
        return F.cross_entropy(logits.reshape(-1, 40), idx.reshape(-1))


class SharedAcrossPieces(torch.nn.Module):
    """One parameter read by three pieces (compiled, eager, compiled) and a buffer."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(8, 8) / 3)
        self.register_buffer("scale", torch.full((8,), 0.5))

    def forward(self, x):
        a = torch.tanh(x @ self.w) * self.scale
        b = _split(a @ self.w)
        return ((b @ self.w) * a).sum()


class ActivationInput(torch.nn.Module):
    """A compiled piece whose only differentiable inputs are activations of an eager piece."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 8)

    def forward(self, x):
        h = _split(self.a(x))
        return (torch.sigmoid(h) * h).sum()


class LossAndLogits(torch.nn.Module):
    """A compiled graph that returns its logits and the cross entropy of them: the backward
    gets the logits back as a saved tensor that requires grad (this crashed the interpreter
    in the backward, as GPT-2 and BERT did)."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(16, 30)

    def forward(self, x, y):
        logits = self.head(x)
        return F.cross_entropy(logits, y), logits


def test_a_parameter_read_before_a_no_grad_region_gets_its_gradient():
    torch.manual_seed(0)
    _check(NoGradInside(), torch.randint(0, 50, (2, 6)), split=False)


@pytest.mark.parametrize("fallback", ["eager", "inductor"])
def test_tied_weights_get_both_parts_of_their_gradient(fallback):
    torch.manual_seed(0)
    _check(Tied(), torch.randint(0, 40, (3, 5)), fallback=fallback)


def test_a_parameter_read_by_several_pieces_gets_every_part():
    torch.manual_seed(0)
    _check(SharedAcrossPieces(), torch.randn(4, 8))


def test_activations_of_an_eager_piece_carry_gradients_through_a_compiled_one():
    torch.manual_seed(0)
    _check(ActivationInput(), torch.randn(4, 8))


@pytest.mark.parametrize("device", devices())
def test_backward_through_saved_outputs_does_not_crash(device):
    torch.manual_seed(0)
    m = LossAndLogits().to(device)
    # x requires grad (an activation): the saved logits then belong to a graph that reaches
    # further back, and differentiating through them from inside the backward crashed.
    x = torch.randn(6, 16, device=device, requires_grad=True)
    y = torch.randint(0, 30, (6,), device=device)
    want_loss, want_logits = m(x, y)
    (want_loss + want_logits.square().mean()).backward()
    want_x_grad = x.grad.clone()
    jm = thunder.jit(copy.deepcopy(m))
    got_loss, got_logits = jm(x, y)
    (got_loss + got_logits.square().mean()).backward()
    assert thunder.compile_stats(jm)["eager_graphs"] == 0
    torch.testing.assert_close(got_loss, want_loss)
    torch.testing.assert_close(x.grad, 2 * want_x_grad)  # eager's, then thunder's on top
    for (n, p), q in zip(m.named_parameters(), jm.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=lambda s: f"{n}: {s}")


def test_attention_backward_through_saved_outputs_does_not_crash():
    # The same for attention: q, k and v are outputs of the graph and saved for its backward.
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 8, requires_grad=True) for _ in range(3))

    def f(q, k, v):
        q2, k2, v2 = q * 2, k * 2, v * 2
        return F.scaled_dot_product_attention(q2, k2, v2, is_causal=True), q2, k2, v2

    def loss(outs):
        return sum(o.square().sum() for o in outs)

    loss(f(q, k, v)).backward()
    want = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    jf = thunder.jit(f)
    loss(jf(q, k, v)).backward()
    assert thunder.compile_stats(jf)["eager_graphs"] == 0
    for t, w in zip((q, k, v), want):
        torch.testing.assert_close(t.grad, w)


def test_a_piece_follows_the_grad_mode_it_runs_under():
    # The same compiled function called with and without grad, alternating: each call's
    # gradients (or their absence) are eager's.
    lin = torch.nn.Linear(4, 4)
    jf = thunder.jit(lambda x: torch.tanh(lin(x)).sum())
    x = torch.randn(3, 4)
    for grad in (True, False, True):
        lin.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(grad):
            out = jf(x)
        assert out.requires_grad == grad
        if grad:
            out.backward()
            assert lin.weight.grad is not None


def test_a_value_returned_twice_gets_both_gradients():
    # `h` and `h.float()` are one value in thunder's trace, returned at two positions (as a
    # split transformers model returns its logits, and their `.float()` for the loss): both
    # positions carry gradient.
    torch.manual_seed(0)
    w = torch.randn(4, 4, requires_grad=True)
    x = torch.randn(3, 4)

    def f(x, w):
        h = torch.tanh(x @ w)
        return h, h.float()

    a, b = f(x, w)
    (a.sum() + (b * b).sum()).backward()
    want = w.grad.clone()
    w.grad = None
    jf = thunder.jit(f)
    a, b = jf(x, w)
    assert a.requires_grad and b.requires_grad
    assert [g for cg in _jit._state(jf).graphs for g in cg.ct_outputs()] == [[0, 1]]
    (a.sum() + (b * b).sum()).backward()
    torch.testing.assert_close(w.grad, want)


class NoGradRegion(torch.nn.Module):
    """A `torch.no_grad()` region of ops thunder compiles, reading buffers only (transformers'
    rotary embedding): one compiled graph, no split."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)
        self.register_buffer("freq", torch.linspace(0.1, 1.0, 8))

    def forward(self, x):
        with torch.no_grad():
            table = (self.freq * 3).cos()[None, :]
        return (self.lin(x) * table).sum()


class NoGradReadsAGradient(torch.nn.Module):
    """A `torch.no_grad()` region reading an activation with a gradient: the region's values
    are constants for autograd, so the activation gets only the gradient from outside it."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        h = self.lin(x)
        with torch.no_grad():
            scale = h.abs().mean() + 1
        return (h * scale).sum()


def test_a_no_grad_region_compiles_with_the_graph_around_it():
    torch.manual_seed(0)
    stats = _check(NoGradRegion(), torch.randn(3, 8), split=False)
    assert stats["compiled_graphs"] == 1 and not stats["unsupported"], stats
    assert [p["engine"] for p in stats["pieces"]] == ["thunder"], stats


@pytest.mark.parametrize("fallback", ["eager", "inductor"])
def test_a_no_grad_region_that_reads_a_gradient_is_not_differentiated(fallback):
    torch.manual_seed(0)
    stats = _check(NoGradReadsAGradient(), torch.randn(3, 8), split=False, fallback=fallback)
    assert any("torch.no_grad() region that reads a value with a gradient" in u
               for u in stats["unsupported"]), stats
    assert stats[f"{fallback}_graphs"] >= 1, stats


def test_a_graph_break_inside_a_no_grad_region_keeps_its_grad_modes(capsys):
    # Dynamo may end a graph inside the region: the code after it must still run without grad.
    lin = torch.nn.Linear(4, 4)

    def f(x):
        h = lin(x)
        with torch.no_grad():
            z = h * 2
            print("break")
            z = z + h
        return (h * z).sum(), z.requires_grad

    x = torch.randn(2, 4)
    want, want_rg = f(x)
    (want_grad,) = torch.autograd.grad(want, lin.weight)
    jf = thunder.jit(f, fallback="eager")
    got, got_rg = jf(x)
    assert "break" in capsys.readouterr().out
    assert got_rg == want_rg is False
    (got_grad,) = torch.autograd.grad(got, lin.weight)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)
    assert torch.is_grad_enabled()


class Checkpointed(torch.nn.Module):
    """A block under `torch.utils.checkpoint` (non-reentrant), then more layers."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 8)
        self.b = torch.nn.Linear(8, 8)
        self.c = torch.nn.Linear(8, 8)

    def block(self, x):
        return torch.tanh(self.b(torch.relu(self.a(x))))

    def forward(self, x):
        h = torch.utils.checkpoint.checkpoint(self.block, x, use_reentrant=False)
        return self.c(h).sum()


def _saved_bytes(fn, *held):
    """Bytes autograd holds for the backward while `fn()` runs, beyond the tensors `held` (the
    parameters and inputs, which are kept anyway): each storage once. A checkpoint's region
    holds its inputs only and recomputes the rest."""
    from torch.multiprocessing.reductions import StorageWeakRef

    free = {StorageWeakRef(t.untyped_storage()) for t in held}
    seen = {}

    def pack(t):
        if isinstance(t, torch._subclasses.FakeTensor):
            return t  # thunder's own metadata runs (a dynamic graph's specialization)
        ref = StorageWeakRef(t.untyped_storage())
        if ref not in free:
            seen[ref] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def test_a_checkpointed_block_compiles_and_is_recomputed_in_the_backward():
    # The region is a thunder piece called through torch.utils.checkpoint: what thunder's
    # forward saves is dropped and its forward runs again in the backward.
    torch.manual_seed(0)
    stats = _check(Checkpointed(), torch.randn(4, 8), split=False)
    assert [p["engine"] for p in stats["pieces"]] == ["thunder", "thunder"], stats
    assert [p["name"] for p in stats["pieces"]][0].endswith("_checkpoint0"), stats
    assert not stats["unsupported"], stats

    class Plain(Checkpointed):
        def forward(self, x):
            return self.c(self.block(x)).sum()

    # A new size (Dynamo's graph of this code turns dynamic, and its checkpoint region is
    # specialized with it).
    x = torch.randn(64, 8)
    held = {}
    for kind in (Plain, Checkpointed):
        torch.manual_seed(0)
        m = kind()
        jm = thunder.jit(m)
        loss, held[kind] = _saved_bytes(lambda: jm(x), x, *m.parameters())
        loss.backward()
    # With the checkpoint, only the block's output ([64, 8], for the last layer's backward);
    # without, some of the block's activations too.
    assert held[Checkpointed] == 64 * 8 * 4 < held[Plain], held


@pytest.mark.parametrize("fallback", ["eager", "inductor"])
def test_a_checkpoint_thunder_cannot_compile_runs_on_the_fallback(fallback):
    class Unsupported(Checkpointed):
        def block(self, x):
            return unsupported(self.a(x), -1)

    torch.manual_seed(0)
    stats = _check(Unsupported(), torch.randn(4, 8), split=False, fallback=fallback)
    assert [p["engine"] for p in stats["pieces"]] == [fallback, "thunder"], stats
    assert any("tag_activation_checkpoint" in u for u in stats["unsupported"]), stats


def _same(f, *args, compiled=True):
    """`f` under thunder.jit (fallback eager) against eager on copies of `args`: outputs, the
    inputs afterwards (in-place changes) and the gradients of the inputs that require grad."""
    want_args = [a.detach().clone().requires_grad_(a.requires_grad) for a in args]
    got_args = [a.detach().clone().requires_grad_(a.requires_grad) for a in args]
    want = f(*want_args)
    jf = thunder.jit(f, fallback="eager")
    got = jf(*got_args)
    torch.testing.assert_close(got, want)
    if want.requires_grad:
        want.sum().backward()
        got.sum().backward()
    for g, w in zip(got_args, want_args):
        torch.testing.assert_close(g, w)
        if w.requires_grad:
            torch.testing.assert_close(g.grad, w.grad)
    s = thunder.compile_stats(jf)
    if compiled:
        assert s["compiled_graphs"] == 1 and not s["unsupported"], s
    return s


def test_in_place_ops_on_computed_values_compile():
    def f(x):
        h = x * 2
        h += 1
        h.masked_fill_(h > 2, 0.5)
        h.mul_(3)
        return h

    _same(f, torch.randn(3, 4, requires_grad=True))


def test_setitem_on_a_computed_value_compiles():
    # transformers' T5 shifts labels right this way.
    def f(x, ids):
        h = ids.new_zeros(ids.shape)
        h[..., 1:] = ids[..., :-1].clone()
        h[..., 0] = 7
        h.masked_fill_(h == -100, 0)
        y = torch.zeros_like(x)
        y[1:, :2] = x[:-1, 1:3] * 2
        y[0] = 1.5
        return y + h[:, :4].float()

    ids = torch.randint(-100, 50, (3, 6))
    _same(f, torch.randn(3, 4, requires_grad=True), ids)


def test_in_place_ops_on_inputs_or_aliased_values_run_outside_thunder():
    def on_input(x):
        x.add_(1)
        return x * 2

    s = _same(on_input, torch.randn(4), compiled=False)
    assert any("in-place change of an input" in u for u in s["unsupported"]), s

    def on_aliased(x):
        h = x * 2
        v = h.view(-1)
        h += 1
        return v * 3

    s = _same(on_aliased, torch.randn(2, 3), compiled=False)
    assert any("aliases" in u for u in s["unsupported"]), s
