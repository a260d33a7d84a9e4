//! A captured graph (what the Python side makes of a Dynamo FX graph) and its translation into
//! a thunder-ir trace.
//!
//! The Python side resolves each FX node's target (a torch function, an `operator` function, a
//! Tensor method) to a canonical op name (`"add"`, `"matmul"`, ...) and its arguments to
//! [`Arg`]s; this module builds the trace with [`TraceBuilder`] and reports ops it has no
//! translation for, so that the caller can run the graph eagerly instead.

use thunder_ir::{DType, Device, NumberType, TensorMeta, Trace, TraceBuilder, Value};

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
    /// A string (a dtype, a reduction).
    Str(String),
    /// A list or tuple.
    List(Vec<Arg>),
}

/// One call.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The canonical op name (see [`SUPPORTED`]).
    pub op: String,
    /// Positional arguments.
    pub args: Vec<Arg>,
    /// Where it comes from in the user's code (for messages).
    pub origin: String,
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

/// The ops this module translates, with the positional parameters the Python side fills
/// (`thunder/_fx.py` normalizes keyword arguments and defaults into this order).
pub const SUPPORTED: [&str; 49] = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "abs",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "silu",
    "gelu",
    "erf",
    "clamp",
    "masked_fill",
    "matmul",
    "pow",
    "where",
    "to_float",
    "to_dtype",
    "reshape",
    "view",
    "permute",
    "transpose",
    "unsqueeze",
    "squeeze",
    "flatten",
    "expand",
    "narrow",
    "cat",
    "stack",
    "sum",
    "mean",
    "amax",
    "softmax",
    "log_softmax",
    "linear",
    "embedding",
    "rms_norm",
    "layer_norm",
    "dropout",
    "scaled_dot_product_attention",
    "cross_entropy",
    "contiguous",
];

/// Builds the trace of `g`, named `name`.
pub fn to_trace(g: &Graph, name: &str) -> Result<Trace, GraphError> {
    let mut b = TraceBuilder::new(name);
    let bad = |op: &str, origin: &str, e: &dyn std::fmt::Display| GraphError::Invalid {
        op: op.to_string(),
        origin: origin.to_string(),
        message: e.to_string(),
    };
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
        .map_err(|e| bad("input", &format!("input {i}"), &e))?;
        vals.push(v);
    }
    for n in &g.nodes {
        let arg = |k: usize| -> Result<thunder_ir::Arg, GraphError> {
            match n.args.get(k) {
                Some(Arg::Ref(r)) => vals.get(*r).map(|&v| v.into()).ok_or_else(|| {
                    bad(
                        &n.op,
                        &n.origin,
                        &format!("argument {k} refers to no value ({r})"),
                    )
                }),
                Some(Arg::Int(x)) => Ok((*x).into()),
                Some(Arg::Float(x)) => Ok((*x).into()),
                Some(Arg::Bool(x)) => Ok((*x).into()),
                Some(Arg::None) | None => {
                    Err(bad(&n.op, &n.origin, &format!("argument {k} is missing")))
                }
                Some(Arg::Str(_) | Arg::List(_)) => Err(bad(
                    &n.op,
                    &n.origin,
                    &format!("argument {k} must be a tensor or a number"),
                )),
            }
        };
        let value = |k: usize| -> Result<Value, GraphError> {
            match n.args.get(k) {
                Some(Arg::Ref(r)) => vals.get(*r).copied().ok_or_else(|| {
                    bad(
                        &n.op,
                        &n.origin,
                        &format!("argument {k} refers to no value ({r})"),
                    )
                }),
                _ => Err(bad(
                    &n.op,
                    &n.origin,
                    &format!("argument {k} must be a tensor"),
                )),
            }
        };
        let ir = |r: thunder_ir::Result<Value>| r.map_err(|e| bad(&n.op, &n.origin, &e));
        let int = |k: usize| -> Result<i64, GraphError> {
            match n.args.get(k) {
                Some(Arg::Int(x)) => Ok(*x),
                _ => Err(bad(
                    &n.op,
                    &n.origin,
                    &format!("argument {k} must be an int"),
                )),
            }
        };
        let ints = |k: usize| -> Result<Vec<i64>, GraphError> {
            match n.args.get(k) {
                Some(Arg::Int(x)) => Ok(vec![*x]),
                Some(Arg::List(l)) => l
                    .iter()
                    .map(|a| match a {
                        Arg::Int(x) => Ok(*x),
                        _ => Err(bad(&n.op, &n.origin, &format!("argument {k} must be ints"))),
                    })
                    .collect(),
                _ => Err(bad(&n.op, &n.origin, &format!("argument {k} must be ints"))),
            }
        };
        let dims = |k: usize| -> Result<Vec<i64>, GraphError> {
            match n.args.get(k) {
                Some(Arg::None) | None => Ok(Vec::new()),
                _ => ints(k),
            }
        };
        let boolean = |k: usize| -> Result<bool, GraphError> {
            match n.args.get(k) {
                Some(Arg::Bool(x)) => Ok(*x),
                Some(Arg::None) | None => Ok(false),
                _ => Err(bad(
                    &n.op,
                    &n.origin,
                    &format!("argument {k} must be a bool"),
                )),
            }
        };
        let opt_value = |k: usize| -> Result<Option<Value>, GraphError> {
            match n.args.get(k) {
                Some(Arg::None) | None => Ok(None),
                _ => value(k).map(Some),
            }
        };
        let opt_float = |k: usize| -> Result<Option<f64>, GraphError> {
            match n.args.get(k) {
                Some(Arg::None) | None => Ok(None),
                Some(Arg::Float(x)) => Ok(Some(*x)),
                Some(Arg::Int(x)) => Ok(Some(*x as f64)),
                _ => Err(bad(
                    &n.op,
                    &n.origin,
                    &format!("argument {k} must be a number"),
                )),
            }
        };
        let string = |k: usize| -> Result<String, GraphError> {
            match n.args.get(k) {
                Some(Arg::Str(x)) => Ok(x.clone()),
                _ => Err(bad(
                    &n.op,
                    &n.origin,
                    &format!("argument {k} must be a string"),
                )),
            }
        };
        let values = |k: usize| -> Result<Vec<Value>, GraphError> {
            match n.args.get(k) {
                Some(Arg::List(l)) => l
                    .iter()
                    .map(|a| match a {
                        Arg::Ref(r) => vals.get(*r).copied().ok_or_else(|| {
                            bad(
                                &n.op,
                                &n.origin,
                                &format!("argument {k} refers to no value"),
                            )
                        }),
                        _ => Err(bad(
                            &n.op,
                            &n.origin,
                            &format!("argument {k} must be tensors"),
                        )),
                    })
                    .collect(),
                _ => Err(bad(
                    &n.op,
                    &n.origin,
                    &format!("argument {k} must be a list"),
                )),
            }
        };
        let v = match n.op.as_str() {
            "add" => ir(b.add(arg(0)?, arg(1)?))?,
            "sub" => ir(b.sub(arg(0)?, arg(1)?))?,
            "mul" => ir(b.mul(arg(0)?, arg(1)?))?,
            "div" => ir(b.div(arg(0)?, arg(1)?))?,
            "pow" => ir(b.pow(arg(0)?, arg(1)?))?,
            "neg" => ir(b.neg(value(0)?))?,
            "abs" => ir(b.abs(value(0)?))?,
            "exp" => ir(b.exp(value(0)?))?,
            "log" => ir(b.log(value(0)?))?,
            "sqrt" => ir(b.sqrt(value(0)?))?,
            "rsqrt" => ir(b.rsqrt(value(0)?))?,
            "sin" => ir(b.sin(value(0)?))?,
            "cos" => ir(b.cos(value(0)?))?,
            "tanh" => ir(b.tanh(value(0)?))?,
            "sigmoid" => ir(b.sigmoid(value(0)?))?,
            "relu" => ir(b.relu(value(0)?))?,
            "silu" => ir(b.silu(value(0)?))?,
            "gelu" => ir(b.gelu(value(0)?, &string(1)?))?,
            "erf" => ir(b.erf(value(0)?))?,
            "clamp" => ir(b.clamp(value(0)?, opt_float(1)?, opt_float(2)?))?,
            "masked_fill" => ir(b.masked_fill(value(0)?, value(1)?, arg(2)?))?,
            "matmul" => ir(b.matmul(value(0)?, value(1)?))?,
            "where" => ir(b.where_(value(0)?, arg(1)?, arg(2)?))?,
            "to_float" => ir(b.to_dtype(value(0)?, DType::F32))?,
            "to_dtype" => {
                let d = string(1)?;
                let dt = DType::parse(&d)
                    .ok_or_else(|| bad(&n.op, &n.origin, &format!("unknown dtype {d}")))?;
                ir(b.to_dtype(value(0)?, dt))?
            }
            "contiguous" => value(0)?,
            "reshape" => ir(b.reshape(value(0)?, &ints(1)?))?,
            "view" => ir(b.view(value(0)?, &ints(1)?))?,
            "permute" => ir(b.permute(value(0)?, &ints(1)?))?,
            "transpose" => ir(b.transpose(value(0)?, int(1)?, int(2)?))?,
            "unsqueeze" => ir(b.unsqueeze(value(0)?, int(1)?))?,
            "squeeze" => {
                let d = dims(1)?;
                ir(b.squeeze(value(0)?, (!d.is_empty()).then_some(d.as_slice())))?
            }
            "flatten" => ir(b.flatten(value(0)?, int(1)?, int(2)?))?,
            "expand" => ir(b.expand(value(0)?, &ints(1)?))?,
            "narrow" => ir(b.narrow(value(0)?, int(1)?, int(2)?, int(3)?))?,
            "cat" => ir(b.cat(&values(0)?, int(1)?))?,
            "stack" => ir(b.stack(&values(0)?, int(1)?))?,
            "sum" => ir(b.sum(value(0)?, &dims(1)?, boolean(2)?))?,
            "mean" => ir(b.mean(value(0)?, &dims(1)?, boolean(2)?))?,
            "amax" => ir(b.amax(value(0)?, &dims(1)?, boolean(2)?))?,
            "softmax" => ir(b.softmax(value(0)?, int(1)?))?,
            "log_softmax" => ir(b.log_softmax(value(0)?, int(1)?))?,
            "linear" => ir(b.linear(value(0)?, value(1)?, opt_value(2)?))?,
            "embedding" => ir(b.embedding(value(0)?, value(1)?))?,
            "rms_norm" => {
                let shape: Vec<usize> = ints(1)?.into_iter().map(|d| d.max(0) as usize).collect();
                ir(b.rms_norm(value(0)?, &shape, opt_value(2)?, opt_float(3)?))?
            }
            "layer_norm" => {
                let shape: Vec<usize> = ints(1)?.into_iter().map(|d| d.max(0) as usize).collect();
                let eps = opt_float(4)?.unwrap_or(1e-5);
                ir(b.layer_norm(value(0)?, &shape, opt_value(2)?, opt_value(3)?, eps))?
            }
            "dropout" => ir(b.dropout(value(0)?, opt_float(1)?.unwrap_or(0.5), boolean(2)?))?,
            "scaled_dot_product_attention" => {
                let o = thunder_ir::SdpaOptions {
                    attn_mask: opt_value(3)?,
                    dropout_p: opt_float(4)?.unwrap_or(0.0),
                    is_causal: boolean(5)?,
                    scale: opt_float(6)?,
                    enable_gqa: boolean(7)?,
                };
                ir(b.scaled_dot_product_attention(value(0)?, value(1)?, value(2)?, &o))?
            }
            "cross_entropy" => {
                ir(b.cross_entropy_with(value(0)?, value(1)?, int(2)?, &string(3)?))?
            }
            _ => {
                return Err(GraphError::Unsupported {
                    op: n.op.clone(),
                    origin: n.origin.clone(),
                })
            }
        };
        vals.push(v);
    }
    let outs: Vec<Value> = g
        .outputs
        .iter()
        .map(|&r| {
            vals.get(r)
                .copied()
                .ok_or_else(|| bad("output", "return", &format!("refers to no value ({r})")))
        })
        .collect::<Result<_, _>>()?;
    b.build(&outs).map_err(|e| bad("build", "return", &e))
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

    #[test]
    fn the_hello_world_graph_is_one_add() {
        let g = Graph {
            inputs: vec![t(DType::I64, &[2, 2]), t(DType::I64, &[2, 2])],
            nodes: vec![Node {
                op: "add".into(),
                args: vec![Arg::Ref(0), Arg::Ref(1)],
                origin: "a + b".into(),
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
                op: "conv2d".into(),
                args: vec![Arg::Ref(0)],
                origin: "line 3".into(),
            }],
            outputs: vec![2],
        };
        assert_eq!(
            to_trace(&g, "f").unwrap_err(),
            GraphError::Unsupported {
                op: "conv2d".into(),
                origin: "line 3".into()
            }
        );
        g.nodes[0] = Node {
            op: "add".into(),
            args: vec![Arg::Ref(0), Arg::Ref(1)],
            origin: "line 4".into(),
        };
        let e = to_trace(&g, "f").unwrap_err().to_string();
        assert!(e.starts_with("add (line 4):"), "{e}");
    }
}
