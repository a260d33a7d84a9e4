"""Generates torch_ops.jsonl: output dtype and shape that torch 2.11 gives for torch-level ops,
so that thunder-ir's decompositions can be checked against PyTorch without linking libtorch.

Run from the repository root with the project's environment:
    .venv/bin/python thunder-ir/tests/data/gen_torch_ops.py > thunder-ir/tests/data/torch_ops.jsonl
Each line: {"op", "args": [operand...], "attrs": {name: value}, "out": [{"dtype","shape"}] | "error"}.
An operand is {"t": dtype, "shape": [...]} (a tensor), a number, or null. Attribute values are
JSON numbers, bools, null, lists, strings; dtypes are "dtype:NAME".
"""
import json, math, warnings
import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore")
D = {"f64": torch.float64, "f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
     "i64": torch.int64, "i32": torch.int32, "i16": torch.int16, "i8": torch.int8, "u8": torch.uint8,
     "b8": torch.bool, "c64": torch.complex64}
N = {v: k for k, v in D.items()}

def T(dt, *shape):
    return {"t": dt, "shape": list(shape)}

def make(spec):
    if isinstance(spec, dict):
        dt = D[spec["t"]]
        if dt.is_floating_point or dt.is_complex:
            return torch.randn(spec["shape"], dtype=dt)
        return torch.zeros(spec["shape"], dtype=dt)
    return spec

cases = []
def case(op, args, attrs, fn):
    cases.append((op, args, attrs, fn))

# elementwise with promotion and broadcasting
for a, b in [(T("f32", 2, 3), T("bf16", 3)), (T("i64", 2, 3), 2.5), (T("i32", 4), T("i64")),
             (T("bf16", 2, 1), T("f16", 1, 5)), (T("u8", 3), T("i8", 3)), (T("b8", 3), True),
             (T("f16", 3), T("f64")), (T("i64", 3), T("f32")), (T("f32", 2), T("f32", 3))]:
    for op in ["add", "sub", "mul", "div", "maximum", "eq", "lt", "pow"]:
        if op == "sub" and (a.get("t") == "b8"):
            continue
        attrs = {"alpha": None} if op in ("add", "sub") else {}
        case(op, [a, b], attrs, lambda x, y, op=op: getattr(torch, op)(x, y))
for dt in ["f32", "bf16", "i64", "b8", "c64"]:
    for op in ["exp", "log", "sqrt", "tanh", "abs", "neg", "sigmoid", "floor", "isfinite", "relu", "silu"]:
        fn = {"relu": torch.relu, "silu": F.silu, "sigmoid": torch.sigmoid}.get(op, getattr(torch, op, None))
        case(op, [T(dt, 2, 3)], {}, lambda x, fn=fn: fn(x))
case("gelu", [T("bf16", 4)], {"approximate": "tanh"}, lambda x: F.gelu(x, approximate="tanh"))
case("gelu", [T("f32", 4)], {"approximate": "none"}, lambda x: F.gelu(x))
case("add", [T("f32", 2, 3), T("f32", 3)], {"alpha": 2}, lambda x, y: torch.add(x, y, alpha=2))
case("where", [T("b8", 2, 1), T("f32", 3), 0.0], {}, lambda c, x, y: torch.where(c, x, y))
case("where", [T("b8", 3), T("i32", 3), T("bf16", 1)], {}, lambda c, x, y: torch.where(c, x, y))
case("masked_fill", [T("bf16", 2, 3), T("b8", 3), -1e4], {}, lambda x, m, v: x.masked_fill(m, v))
case("clamp", [T("i64", 3)], {"min": 0.5, "max": None}, lambda x: torch.clamp(x, min=0.5))
case("clamp", [T("bf16", 3)], {"min": -1, "max": 1}, lambda x: torch.clamp(x, -1, 1))
# reductions
for dt in ["f32", "bf16", "i32", "b8"]:
    case("sum", [T(dt, 2, 3, 4)], {"dim": [1], "keepdim": False, "dtype": None}, lambda x: torch.sum(x, 1))
    case("sum", [T(dt, 2, 3, 4)], {"dim": None, "keepdim": False, "dtype": None}, lambda x: torch.sum(x))
    case("mean", [T(dt, 2, 3, 4)], {"dim": [0, -1], "keepdim": True, "dtype": None}, lambda x: torch.mean(x, (0, -1), keepdim=True))
    case("amax", [T(dt, 2, 3)], {"dim": [1], "keepdim": True}, lambda x: torch.amax(x, 1, keepdim=True))
    case("var", [T(dt, 5, 3)], {"dim": [0], "correction": 1.0, "keepdim": False}, lambda x: torch.var(x, 0))
    case("argmax", [T(dt, 5, 3)], {"dim": 1, "keepdim": True}, lambda x: torch.argmax(x, 1, keepdim=True))
case("sum", [T("bf16", 3)], {"dim": None, "keepdim": False, "dtype": "dtype:f32"}, lambda x: torch.sum(x, dtype=torch.float32))
case("sum", [T("f32", 2, 3)], {"dim": [2], "keepdim": False, "dtype": None}, lambda x: torch.sum(x, 2))
case("std", [T("c64", 4)], {"dim": None, "correction": 0.0, "keepdim": False}, lambda x: torch.std(x, correction=0))
# nn
for dt in ["f32", "bf16", "i64"]:
    case("softmax", [T(dt, 2, 5)], {"dim": -1, "dtype": None}, lambda x: torch.softmax(x, -1))
    case("log_softmax", [T(dt, 2, 5)], {"dim": 0, "dtype": None}, lambda x: torch.log_softmax(x, 0))
case("softmax", [T("bf16", 2, 5)], {"dim": 1, "dtype": "dtype:f32"}, lambda x: torch.softmax(x, 1, dtype=torch.float32))
case("softmax", [T("f32", 2, 5)], {"dim": 2, "dtype": None}, lambda x: torch.softmax(x, 2))
for red in ["mean", "sum", "none"]:
    case("cross_entropy", [T("bf16", 6, 10), T("i64", 6)], {"ignore_index": -100, "reduction": red, "label_smoothing": 0.0},
         lambda x, t, red=red: F.cross_entropy(x, t, reduction=red))
case("cross_entropy", [T("f32", 10), T("i64")], {"ignore_index": -100, "reduction": "none", "label_smoothing": 0.0},
     lambda x, t: F.cross_entropy(x, t, reduction="none"))
case("cross_entropy", [T("f32", 6, 10), T("i64", 5)], {"ignore_index": -100, "reduction": "mean", "label_smoothing": 0.0},
     lambda x, t: F.cross_entropy(x, t))
for dt in ["f32", "bf16"]:
    case("rms_norm", [T(dt, 2, 3, 8), T(dt, 8)], {"normalized_shape": [8], "eps": 1e-5}, lambda x, w: F.rms_norm(x, [8], w, 1e-5))
    case("rms_norm", [T(dt, 2, 3, 8), None], {"normalized_shape": [3, 8], "eps": None}, lambda x, w: F.rms_norm(x, [3, 8]))
    case("layer_norm", [T(dt, 2, 8), T(dt, 8), T(dt, 8)], {"normalized_shape": [8], "eps": 1e-5}, lambda x, w, b: F.layer_norm(x, [8], w, b))
case("rms_norm", [T("f32", 2, 8), None], {"normalized_shape": [4], "eps": None}, lambda x, w: F.rms_norm(x, [4]))
case("dropout", [T("bf16", 4, 4)], {"p": 0.5, "training": True}, lambda x: F.dropout(x, 0.5, True))
case("embedding", [T("i64", 2, 7), T("bf16", 100, 8)], {"padding_idx": None}, lambda i, w: F.embedding(i, w))
case("embedding", [T("f32", 2, 7), T("bf16", 100, 8)], {"padding_idx": None}, lambda i, w: F.embedding(i, w))
case("linear", [T("f32", 4, 16), T("f32", 32, 16), T("f32", 32)], {}, lambda x, w, b: F.linear(x, w, b))
case("linear", [T("f32", 4, 16), T("f32", 64, 32), None], {}, lambda x, w, b: F.linear(x, w, b))
case("linear", [T("bf16", 2, 3, 16), T("bf16", 16), None], {}, lambda x, w, b: F.linear(x, w, b))
case("linear", [T("f32", 4, 16), T("bf16", 32, 16), None], {}, lambda x, w, b: F.linear(x, w, b))
for a, b in [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((5, 2, 3), (3, 4)), ((5, 1, 2, 3), (7, 3, 4)), ((2, 3), (4, 5))]:
    case("matmul", [T("f32", *a), T("f32", *b)], {}, lambda x, y: torch.matmul(x, y))
case("bmm", [T("f32", 5, 2, 3), T("f32", 5, 3, 4)], {}, lambda x, y: torch.bmm(x, y))
case("bmm", [T("f32", 2, 3), T("f32", 3, 4)], {}, lambda x, y: torch.bmm(x, y))
sdpa = {"dropout_p": 0.0, "is_causal": True, "scale": None, "enable_gqa": False}
case("scaled_dot_product_attention", [T("bf16", 2, 4, 8, 16), T("bf16", 2, 4, 8, 16), T("bf16", 2, 4, 8, 16), None], sdpa,
     lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, is_causal=True))
case("scaled_dot_product_attention", [T("f32", 2, 4, 8, 16), T("f32", 2, 2, 6, 16), T("f32", 2, 2, 6, 32), None],
     dict(sdpa, is_causal=False, enable_gqa=True),
     lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
case("scaled_dot_product_attention", [T("f32", 2, 8, 16), T("f32", 2, 6, 16), T("f32", 2, 6, 16), T("b8", 8, 6)],
     dict(sdpa, is_causal=False), lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m))
# shape ops
case("reshape", [T("f32", 2, 3, 4)], {"shape": [4, -1]}, lambda x: x.reshape(4, -1))
case("reshape", [T("f32", 2, 3, 4)], {"shape": [5, -1]}, lambda x: x.reshape(5, -1))
case("reshape", [T("f32", 2, 0, 4)], {"shape": [-1, 4]}, lambda x: x.reshape(-1, 4))
case("view", [T("f32", 2, 3, 4)], {"shape": [24]}, lambda x: x.view(24))
case("permute", [T("f32", 2, 3, 4)], {"dims": [2, 0, 1]}, lambda x: x.permute(2, 0, 1))
case("permute", [T("f32", 2, 3, 4)], {"dims": [2, 0]}, lambda x: x.permute(2, 0))
case("transpose", [T("f32", 2, 3, 4)], {"dim0": -1, "dim1": 0}, lambda x: x.transpose(-1, 0))
case("unsqueeze", [T("f32", 2, 3)], {"dim": -1}, lambda x: x.unsqueeze(-1))
case("unsqueeze", [T("f32", 2, 3)], {"dim": 3}, lambda x: x.unsqueeze(3))
case("squeeze", [T("f32", 2, 1, 3, 1)], {"dim": None}, lambda x: x.squeeze())
case("squeeze", [T("f32", 2, 1, 3, 1)], {"dim": [0, 1]}, lambda x: x.squeeze((0, 1)))
case("flatten", [T("f32", 2, 3, 4)], {"start_dim": 1, "end_dim": -1}, lambda x: x.flatten(1))
case("flatten", [T("f32")], {"start_dim": 0, "end_dim": -1}, lambda x: x.flatten())
case("expand", [T("f32", 3, 1)], {"shape": [2, -1, 4]}, lambda x: x.expand(2, -1, 4))
case("expand", [T("f32", 3, 2)], {"shape": [3, 4]}, lambda x: x.expand(3, 4))
case("split", [T("f32", 7, 2)], {"split_size_or_sections": 3, "dim": 0}, lambda x: torch.split(x, 3, 0))
case("split", [T("f32", 7, 2)], {"split_size_or_sections": [2, 5], "dim": 0}, lambda x: torch.split(x, [2, 5], 0))
case("split", [T("f32", 7, 2)], {"split_size_or_sections": [2, 4], "dim": 0}, lambda x: torch.split(x, [2, 4], 0))
case("narrow", [T("f32", 7, 4)], {"dim": 1, "start": -3, "length": 2}, lambda x: x.narrow(1, -3, 2))
case("narrow", [T("f32", 7, 4)], {"dim": 1, "start": 3, "length": 2}, lambda x: x.narrow(1, 3, 2))
case("cat", [[T("f32", 2, 3), T("bf16", 4, 3)]], {"dim": 0}, lambda ts: torch.cat(ts, 0))
case("cat", [[T("f32", 2, 3), T("f32", 2, 4)]], {"dim": 0}, lambda ts: torch.cat(ts, 0))
case("stack", [[T("f32", 2, 3), T("i64", 2, 3)]], {"dim": -1}, lambda ts: torch.stack(ts, -1))
case("to", [T("f32", 2)], {"dtype": "dtype:bf16", "device": None}, lambda x: x.to(torch.bfloat16))
case("zeros", [], {"shape": [2, 3], "dtype": None, "device": None}, lambda: torch.zeros(2, 3))
case("full", [], {"shape": [2], "fill_value": 3, "dtype": None, "device": None}, lambda: torch.full((2,), 3))
case("full", [], {"shape": [2], "fill_value": True, "dtype": None, "device": None}, lambda: torch.full((2,), True))
case("arange", [], {"start": 0, "end": 10, "step": 3, "dtype": None, "device": None}, lambda: torch.arange(0, 10, 3))
case("arange", [], {"start": 0.5, "end": 2, "step": 0.25, "dtype": None, "device": None}, lambda: torch.arange(0.5, 2, 0.25))
case("arange", [], {"start": None, "end": 5, "step": None, "dtype": None, "device": None}, lambda: torch.arange(5))
case("arange", [], {"start": None, "end": 2.5, "step": None, "dtype": None, "device": None}, lambda: torch.arange(2.5))
case("arange", [], {"start": 2, "end": 9, "step": None, "dtype": None, "device": None}, lambda: torch.arange(2, 9))
PAD = {"mode": "constant", "value": None}
case("pad", [T("f32", 3, 4)], {"pad": [1, 2, -1, 0], **PAD}, lambda x: F.pad(x, (1, 2, -1, 0)))
case("pad", [T("i64", 3, 4)], {"pad": [1, 1], "mode": "constant", "value": 2.5}, lambda x: F.pad(x, (1, 1), value=2.5))
case("pad", [T("f32", 3, 4)], {"pad": [-3, -2], **PAD}, lambda x: F.pad(x, (-3, -2)))
case("pad", [T("f32", 3, 4)], {"pad": [1, 1, 1], **PAD}, lambda x: F.pad(x, (1, 1, 1)))
case("pad", [T("f32", 3, 4)], {"pad": [1, 1, 1, 1, 1, 1], **PAD}, lambda x: F.pad(x, (1,) * 6))
case("addmm", [T("bf16", 4), T("bf16", 2, 3), T("bf16", 3, 4)], {"beta": None, "alpha": None}, lambda c, x, y: torch.addmm(c, x, y))
case("addmm", [T("f32", 2, 4), T("f32", 2, 3), T("f64", 3, 4)], {"beta": None, "alpha": None}, lambda c, x, y: torch.addmm(c, x, y))
case("addmm", [T("f32", 3, 4), T("f32", 2, 3), T("f32", 3, 4)], {"beta": None, "alpha": None}, lambda c, x, y: torch.addmm(c, x, y))
case("gather", [T("f32", 3, 4), T("i64", 5, 0)], {"dim": 1}, lambda x, i: torch.gather(x, 1, i))
case("gather", [T("f32", 3, 4), T("i64", 4, 2)], {"dim": 0}, lambda x, i: torch.gather(x, 0, i))
case("gather", [T("f32", 3, 4), T("i32", 3, 2)], {"dim": 1}, lambda x, i: torch.gather(x, 1, i))
case("index_select", [T("bf16", 5, 4), T("i32")], {"dim": 0}, lambda x, i: torch.index_select(x, 0, i))
case("index_select", [T("f32", 5, 4), T("i64", 3, 1)], {"dim": 1}, lambda x, i: torch.index_select(x, 1, i))
case("repeat_interleave", [T("f32", 3, 4)], {"repeats": 2, "dim": 1}, lambda x: x.repeat_interleave(2, dim=1))
case("repeat_interleave", [T("f32")], {"repeats": 2, "dim": 0}, lambda x: x.repeat_interleave(2, dim=0))
case("triu", [T("b8", 2, 3, 4)], {"diagonal": 1}, lambda x: torch.triu(x, 1))
case("tril", [T("f32", 3)], {"diagonal": 0}, lambda x: torch.tril(x))
case("cumsum", [T("i32", 3, 4)], {"dim": 1, "dtype": None}, lambda x: torch.cumsum(x, 1))
case("cumsum", [T("b8", 3)], {"dim": 0, "dtype": None}, lambda x: torch.cumsum(x, 0))
case("cumsum", [T("bf16", 3)], {"dim": -1, "dtype": None}, lambda x: torch.cumsum(x, -1))
case("cumsum", [T("f32", 3)], {"dim": 0, "dtype": "dtype:f64"}, lambda x: torch.cumsum(x, 0, dtype=torch.float64))

def desc(t):
    return {"dtype": N[t.dtype], "shape": list(t.shape)}

for op, args, attrs, fn in cases:
    torch.manual_seed(0)
    real = [[make(x) for x in a] if isinstance(a, list) else make(a) for a in args]
    try:
        r = fn(*real)
        out = [desc(x) for x in r] if isinstance(r, (tuple, list)) else [desc(r)]
    except Exception:
        out = "error"
    print(json.dumps({"op": op, "args": args, "attrs": attrs, "out": out}))
