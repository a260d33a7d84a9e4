//! A captured graph (what the Python side makes of a Dynamo FX graph) and its translation into
//! a thunder-ir trace.
//!
//! The Python side resolves each FX node's target (a torch function, an `operator` function, a
//! Tensor method) through the op table to a torch-level op ([`TorchOp`], by name) and normalizes
//! its arguments into the op's [`signature`](TorchOp::signature) order: the operands, then the
//! attributes. This module converts them by the signature's kinds, builds each op with
//! [`TraceBuilder::call`], and reports ops that have no PyTorch names in the table (the ones
//! the front end does not translate), so that the caller can run the graph eagerly instead.

use thunder_ir::ops::{AttrKind, ParamKind};
use thunder_ir::{
    DType, Device, NumberType, Op, PrimOp, TensorMeta, TorchOp, Trace, TraceBuilder, Value,
};

/// The node name of an ATen operator called by name (`prims.aten`), which has no op-table row
/// with PyTorch names: the front end records the ATen call itself.
pub const ATEN: &str = "aten";

/// An input of a captured graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A tensor.
    Tensor {
        /// Element type.
        dtype: DType,
        /// Shape.
        shape: Vec<usize>,
        /// Device.
        device: Device,
        /// Whether it requires grad.
        requires_grad: bool,
    },
    /// A Python number.
    Number(NumberType),
}

/// An argument of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// The value with this index: the inputs first, then each node's result in order.
    Ref(usize),
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// A bool.
    Bool(bool),
    /// `None`.
    None,
    /// A string (a dtype, a device, a reduction).
    Str(String),
    /// A list or tuple.
    List(Vec<Arg>),
}

/// One call.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The torch-level op's name (`"add"`, `"softmax"`): one of [`translated_ops`], or [`ATEN`].
    pub op: String,
    /// The op's operands, then its attributes, in the order of its signature.
    pub args: Vec<Arg>,
    /// Where it comes from in the user's code (for messages).
    pub origin: String,
    /// Inside a `torch.autocast` region of this dtype (bfloat16 or float16): its operands are
    /// cast as its op-table row says (`thunder_transforms::autocast_call`).
    pub autocast: Option<DType>,
}

/// A captured graph: inputs, nodes in order, outputs (value indices).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// The inputs.
    pub inputs: Vec<Input>,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The outputs, as value indices.
    pub outputs: Vec<usize>,
}

/// Why a graph could not be translated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GraphError {
    /// An op without a translation (the graph runs eagerly).
    #[error("{op} is not supported by thunder yet ({origin})")]
    Unsupported {
        /// The op.
        op: String,
        /// Where it is in the user's code.
        origin: String,
    },
    /// A translation that thunder-ir rejected (bad arguments or metadata).
    #[error("{op} ({origin}): {message}")]
    Invalid {
        /// The op.
        op: String,
        /// Where it is in the user's code.
        origin: String,
        /// thunder-ir's message.
        message: String,
    },
}

/// The ops graphs may call: the torch-level ops whose op-table row names PyTorch callables
/// (`OpInfo::pytorch`), the ones the Python front end translates.
pub fn translated_ops() -> impl Iterator<Item = TorchOp> {
    TorchOp::ALL.iter().copied().filter(is_translated)
}

fn is_translated(op: &TorchOp) -> bool {
    !op.info().pytorch.is_empty()
}

/// The op named `name`, if graphs may call it.
fn translated(name: &str) -> Option<TorchOp> {
    TorchOp::from_name(name).filter(is_translated)
}

/// Builds the trace of `g`, named `name`.
pub fn to_trace(g: &Graph, name: &str) -> Result<Trace, GraphError> {
    let mut b = TraceBuilder::new(name);
    let mut vals: Vec<Value> = Vec::new();
    for (i, inp) in g.inputs.iter().enumerate() {
        let v = match inp {
            Input::Tensor {
                dtype,
                shape,
                device,
                requires_grad,
            } => b.input(
                &format!("a{i}"),
                TensorMeta::new(*dtype, shape.clone())
                    .on(*device)
                    .with_grad(*requires_grad),
            ),
            Input::Number(t) => b.number_input(&format!("a{i}"), *t),
        }
        .map_err(|e| invalid("input", &format!("input {i}"), e))?;
        vals.push(v);
    }
    for n in &g.nodes {
        let v = Call { n, vals: &vals }.build(&mut b)?;
        vals.extend(v);
    }
    let outs: Vec<Value> = g
        .outputs
        .iter()
        .map(|&r| {
            vals.get(r)
                .copied()
                .ok_or_else(|| invalid("output", "return", format!("refers to no value ({r})")))
        })
        .collect::<Result<_, _>>()?;
    b.build(&outs).map_err(|e| invalid("build", "return", e))
}

fn invalid(op: &str, origin: &str, e: impl std::fmt::Display) -> GraphError {
    GraphError::Invalid {
        op: op.to_string(),
        origin: origin.to_string(),
        message: e.to_string(),
    }
}

/// One node's translation: its arguments converted by the kinds of its op's signature.
struct Call<'a> {
    n: &'a Node,
    /// The values so far (inputs, then the results of the nodes before).
    vals: &'a [Value],
}

impl Call<'_> {
    fn bad(&self, e: impl std::fmt::Display) -> GraphError {
        invalid(&self.n.op, &self.n.origin, e)
    }

    /// The node's results: one, or (an ATen call) one per result of the operator.
    fn build(&self, b: &mut TraceBuilder) -> Result<Vec<Value>, GraphError> {
        let n = self.n;
        if n.op == ATEN {
            return self.aten(b);
        }
        let op = translated(&n.op).ok_or_else(|| GraphError::Unsupported {
            op: n.op.clone(),
            origin: n.origin.clone(),
        })?;
        let sig = op.signature();
        let (n_ops, n_attrs) = (sig.operands.len(), sig.attrs.len());
        if n.args.len() != n_ops + n_attrs {
            return Err(self.bad(format!(
                "takes {} arguments ({n_ops} operands, then {n_attrs} attributes), got {}",
                n_ops + n_attrs,
                n.args.len()
            )));
        }
        let (operand_args, attr_args) = n.args.split_at(n_ops);
        let operands = sig
            .operands
            .iter()
            .zip(operand_args)
            .map(|(&(name, kind), a)| self.operand(name, kind, a))
            .collect::<Result<Vec<_>, _>>()?;
        let attrs = sig
            .attrs
            .iter()
            .zip(attr_args)
            .map(|(&(name, kind), a)| self.attr(name, kind, a))
            .collect::<Result<Vec<_>, _>>()?;
        let outs = match n.autocast {
            Some(dtype) => {
                thunder_transforms::autocast_call(b, Op::Torch(op), operands, attrs, dtype)
                    .map_err(|e| self.bad(e))?
            }
            None => b
                .call(Op::Torch(op), operands, attrs)
                .map_err(|e| self.bad(e))?,
        };
        match outs.as_slice() {
            [v] => Ok(vec![*v]),
            _ => Err(self.bad(format!(
                "defines {} values; a graph node defines one",
                outs.len()
            ))),
        }
    }

    /// An ATen operator called by name (`prims.aten`): the list of its tensor operands, then the
    /// strings `op`, `args` and `out` ([`thunder_ir::ops::aten`]).
    fn aten(&self, b: &mut TraceBuilder) -> Result<Vec<Value>, GraphError> {
        let n = self.n;
        let [Arg::List(tensors), Arg::Str(op), Arg::Str(args), Arg::Str(out)] = n.args.as_slice()
        else {
            return Err(self.bad(format!(
                "takes a list of tensors and the strings op, args and out, got {:?}",
                n.args
            )));
        };
        let operands = tensors
            .iter()
            .map(|t| self.value("tensors", t))
            .collect::<Result<Vec<_>, _>>()?;
        let attrs = [op, args, out]
            .into_iter()
            .map(|s| thunder_ir::Attr::Str(s.clone()))
            .collect();
        b.call(
            Op::Prim(PrimOp::Aten),
            vec![thunder_ir::Arg::List(operands)],
            attrs,
        )
        .map_err(|e| self.bad(e))
    }

    fn value(&self, name: &str, a: &Arg) -> Result<Value, GraphError> {
        match a {
            Arg::Ref(r) => self
                .vals
                .get(*r)
                .copied()
                .ok_or_else(|| self.bad(format!("{name} refers to no value ({r})"))),
            _ => Err(self.bad(format!("{name} must be a tensor, got {a:?}"))),
        }
    }

    fn operand(&self, name: &str, kind: ParamKind, a: &Arg) -> Result<thunder_ir::Arg, GraphError> {
        use thunder_ir::Arg as IrArg;
        use ParamKind as K;
        Ok(match (kind, a) {
            (K::Tensor | K::OptTensor | K::TensorOrNumber, Arg::Ref(_)) => {
                IrArg::Value(self.value(name, a)?)
            }
            (K::OptTensor, Arg::None) => IrArg::None,
            (K::TensorOrNumber, Arg::Int(x)) => IrArg::Int(*x),
            (K::TensorOrNumber, Arg::Float(x)) => IrArg::Float(*x),
            (K::TensorOrNumber, Arg::Bool(x)) => IrArg::Bool(*x),
            (K::TensorList, Arg::List(l)) => IrArg::List(
                l.iter()
                    .map(|x| self.value(name, x))
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                let want = match kind {
                    K::Tensor => "a tensor",
                    K::OptTensor => "a tensor or None",
                    K::TensorOrNumber => "a tensor or a number",
                    K::TensorList => "a list of tensors",
                };
                return Err(self.bad(format!("{name} must be {want}, got {a:?}")));
            }
        })
    }

    fn attr(&self, name: &str, kind: AttrKind, a: &Arg) -> Result<thunder_ir::Attr, GraphError> {
        use thunder_ir::Attr as A;
        use AttrKind as K;
        let ints = |l: &[Arg]| -> Option<Vec<i64>> {
            l.iter()
                .map(|x| match x {
                    Arg::Int(i) => Some(*i),
                    _ => None,
                })
                .collect()
        };
        let optional = matches!(
            kind,
            K::OptInt | K::OptFloat | K::OptNumber | K::OptInts | K::OptDType | K::OptDevice
        );
        let attr = match (kind, a) {
            (_, Arg::None) if optional => Some(A::None),
            (K::Int | K::OptInt | K::IntOrInts, Arg::Int(x)) => Some(A::Int(*x)),
            // An int where a float goes is widened, as Python does.
            (K::Float | K::OptFloat, Arg::Int(x)) => Some(A::Float(*x as f64)),
            (K::Float | K::OptFloat | K::Number | K::OptNumber, Arg::Float(x)) => {
                Some(A::Float(*x))
            }
            (K::Number | K::OptNumber, Arg::Int(x)) => Some(A::Int(*x)),
            (K::Number | K::OptNumber | K::Bool, Arg::Bool(x)) => Some(A::Bool(*x)),
            (K::Str, Arg::Str(s)) => Some(A::Str(s.clone())),
            (K::Ints | K::OptInts, Arg::Int(x)) => Some(A::Ints(vec![*x])),
            // An empty dim list reads as every dim, as in PyTorch's reductions.
            (K::OptInts, Arg::List(l)) if l.is_empty() => Some(A::None),
            (K::Ints | K::OptInts | K::IntOrInts, Arg::List(l)) => ints(l).map(A::Ints),
            (K::IntLists, Arg::List(l)) => l
                .iter()
                .map(|x| match x {
                    Arg::List(l) => ints(l),
                    _ => None,
                })
                .collect::<Option<_>>()
                .map(A::IntLists),
            (K::DType | K::OptDType, Arg::Str(s)) => {
                let dt = DType::parse(s).ok_or_else(|| self.bad(format!("unknown dtype {s}")))?;
                Some(A::DType(dt))
            }
            (K::Device | K::OptDevice, Arg::Str(s)) => {
                Some(A::Device(s.parse::<Device>().map_err(|e| self.bad(e))?))
            }
            _ => None,
        };
        attr.ok_or_else(|| self.bad(format!("{name} must be {}, got {a:?}", kind.describe())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dtype: DType, shape: &[usize]) -> Input {
        Input::Tensor {
            dtype,
            shape: shape.to_vec(),
            device: Device::Cpu,
            requires_grad: false,
        }
    }

    fn one_node(inputs: Vec<Input>, op: &str, args: Vec<Arg>) -> Graph {
        let n = inputs.len();
        Graph {
            inputs,
            nodes: vec![Node {
                op: op.into(),
                args,
                origin: "line 1".into(),
                autocast: None,
            }],
            outputs: vec![n],
        }
    }

    #[test]
    fn the_hello_world_graph_is_one_add() {
        let g = Graph {
            inputs: vec![t(DType::I64, &[2, 2]), t(DType::I64, &[2, 2])],
            nodes: vec![Node {
                op: "add".into(),
                args: vec![Arg::Ref(0), Arg::Ref(1), Arg::None],
                origin: "a + b".into(),
                autocast: None,
            }],
            outputs: vec![2],
        };
        let tr = to_trace(&g, "f").unwrap();
        assert_eq!(tr.bound_symbols.len(), 1);
        assert!(
            tr.to_python().contains("ltorch.add(a0, a1, alpha=None)"),
            "{}",
            tr.to_python()
        );
    }

    #[test]
    fn unknown_ops_are_reported_and_bad_shapes_are_invalid() {
        let mut g = Graph {
            inputs: vec![t(DType::F32, &[2, 3]), t(DType::F32, &[4, 5])],
            nodes: vec![Node {
                op: "conv3d".into(),
                args: vec![Arg::Ref(0)],
                origin: "line 3".into(),
                autocast: None,
            }],
            outputs: vec![2],
        };
        assert_eq!(
            to_trace(&g, "f").unwrap_err(),
            GraphError::Unsupported {
                op: "conv3d".into(),
                origin: "line 3".into()
            }
        );
        g.nodes[0] = Node {
            op: "add".into(),
            args: vec![Arg::Ref(0), Arg::Ref(1), Arg::None],
            origin: "line 4".into(),
            autocast: None,
        };
        let e = to_trace(&g, "f").unwrap_err().to_string();
        assert!(e.starts_with("add (line 4):"), "{e}");
    }

    #[test]
    fn ops_without_pytorch_names_are_unsupported() {
        // round is a torch-level op, but its row names no PyTorch callable: the front end does
        // not translate it, and a graph that calls it is refused, not built.
        assert!(TorchOp::from_name("round").is_some());
        let g = one_node(vec![t(DType::F32, &[3])], "round", vec![Arg::Ref(0)]);
        assert!(matches!(
            to_trace(&g, "f"),
            Err(GraphError::Unsupported { op, .. }) if op == "round"
        ));
        assert!(translated_ops().all(|op| !op.info().pytorch.is_empty()));
        assert!(translated_ops().any(|op| op == TorchOp::Softmax));
        assert!(!translated_ops().any(|op| op == TorchOp::Round));
    }

    #[test]
    fn arguments_are_converted_by_the_signature_kinds() {
        // sum(a; dim, keepdim, dtype): an empty dim list is every dim, an int is one dim.
        let g = one_node(
            vec![t(DType::F32, &[2, 3])],
            "sum",
            vec![Arg::Ref(0), Arg::List(vec![]), Arg::Bool(false), Arg::None],
        );
        let py = to_trace(&g, "f").unwrap().to_python();
        assert!(py.contains("dim=None"), "{py}");
        let g = one_node(
            vec![t(DType::F32, &[2, 3])],
            "sum",
            vec![Arg::Ref(0), Arg::Int(1), Arg::Bool(true), Arg::None],
        );
        let tr = to_trace(&g, "f").unwrap();
        assert_eq!(tr.tensor(tr.outputs[0]).unwrap().shape.sizes(), vec![2, 1]);
        // to(a; dtype, device): dtypes come as their torch names.
        let g = one_node(
            vec![t(DType::F32, &[2])],
            "to",
            vec![Arg::Ref(0), Arg::Str("float64".into()), Arg::None],
        );
        let tr = to_trace(&g, "f").unwrap();
        assert_eq!(tr.tensor(tr.outputs[0]).unwrap().dtype, DType::F64);
        // layer_norm's float eps may come as an int.
        let g = one_node(
            vec![t(DType::F32, &[2, 4])],
            "layer_norm",
            vec![
                Arg::Ref(0),
                Arg::None,
                Arg::None,
                Arg::List(vec![Arg::Int(4)]),
                Arg::Int(0),
            ],
        );
        assert!(to_trace(&g, "f").is_ok());
    }

    #[test]
    fn bad_arguments_are_invalid_and_name_the_op() {
        let x = || vec![t(DType::F32, &[2, 3])];
        let cases: Vec<(&str, Vec<Arg>, &str)> = vec![
            ("softmax", vec![Arg::Ref(0)], "takes 3 arguments"),
            (
                "softmax",
                vec![Arg::Ref(0), Arg::Str("x".into()), Arg::None],
                "dim must be an int",
            ),
            ("neg", vec![Arg::Ref(7)], "refers to no value (7)"),
            ("neg", vec![Arg::Int(2)], "a must be a tensor"),
            (
                "to",
                vec![Arg::Ref(0), Arg::Str("float99".into()), Arg::None],
                "unknown dtype float99",
            ),
            (
                "cat",
                vec![Arg::List(vec![Arg::Ref(0), Arg::Int(1)]), Arg::Int(0)],
                "tensors must be a tensor",
            ),
            (
                "reshape",
                vec![Arg::Ref(0), Arg::List(vec![Arg::Str("a".into())])],
                "shape must be a list of ints",
            ),
        ];
        for (op, args, says) in cases {
            let e = to_trace(&one_node(x(), op, args), "f").unwrap_err();
            assert!(matches!(e, GraphError::Invalid { .. }), "{e}");
            let e = e.to_string();
            assert!(
                e.starts_with(&format!("{op} (line 1):")) && e.contains(says),
                "{e}"
            );
        }
    }

    #[test]
    fn nodes_in_an_autocast_region_cast_their_operands_as_the_op_table_says() {
        // matmul is on autocast's lower-precision list, softmax on its float32 list, neg on
        // neither: under bf16 autocast the first computes in bf16, the second in f32, the third
        // in what it gets.
        let node = |op: &str, args, autocast| Node {
            op: op.into(),
            args,
            origin: "line 1".into(),
            autocast,
        };
        let g = Graph {
            inputs: vec![t(DType::F32, &[2, 2]), t(DType::F32, &[2, 2])],
            nodes: vec![
                node("matmul", vec![Arg::Ref(0), Arg::Ref(1)], Some(DType::BF16)),
                node(
                    "softmax",
                    vec![Arg::Ref(2), Arg::Int(-1), Arg::None],
                    Some(DType::BF16),
                ),
                node("neg", vec![Arg::Ref(2)], Some(DType::BF16)),
                node("matmul", vec![Arg::Ref(0), Arg::Ref(1)], None),
            ],
            outputs: vec![2, 3, 4, 5],
        };
        let tr = to_trace(&g, "f").unwrap();
        let dtypes: Vec<DType> = tr
            .outputs
            .iter()
            .map(|&o| tr.tensor(o).unwrap().dtype)
            .collect();
        assert_eq!(
            dtypes,
            vec![DType::BF16, DType::F32, DType::BF16, DType::F32],
            "{}",
            tr.to_python()
        );
    }
}
