//! Reverse-mode autodiff: a trace and the inputs to differentiate give a trace that computes the
//! outputs and the gradients.
//!
//! The transform works on prims (those whose row of the op table says `vjp`, see
//! [`thunder_ir::ops::info`]) and on the torch-level ops whose row says `grad(WHOLE)` (softmax,
//! log_softmax, cross_entropy, rms_norm, layer_norm, attention), which keep their own rule, save less than their decompositions would,
//! and stay one op in the forward (attention's backward is one op too, which an executor may run
//! whole); every other torch-level op is replaced by its decomposition. The forward is replayed,
//! and the backward is built from one VJP rule per op, applied in reverse program order, with
//! cotangents of a value used several times summed. An op without a rule is a typed error naming
//! it, never a wrong answer. The rules are filed by op family in [`crate::rules`]; this file is
//! the driver.

use crate::util::{copy_inputs, ints, zeros};
use crate::{Result, TransformError};
use std::collections::{HashMap, HashSet};
use thunder_ir::{Attr, BoundSymbol, DType, Op, PrimOp, TensorMeta, Trace, TraceBuilder, Value};

/// A trace computing `trace`'s outputs and the gradients of `wrt` (inputs of `trace`).
///
/// The new trace takes the original inputs followed by one cotangent per floating tensor output
/// (`ct_<output name>`, the gradient flowing in, as `torch.autograd.grad`'s `grad_outputs`), and
/// returns the original outputs followed by one gradient per `wrt` input (zeros when the outputs
/// do not depend on it).
pub fn grad(trace: &Trace, wrt: &[Value]) -> Result<Trace> {
    grad_with(trace, wrt, &GradOptions::default())
}

/// `jax.value_and_grad` for a trace with one output, a floating scalar (a loss): a trace that takes
/// `trace`'s inputs only and returns the output followed by its gradient with respect to each of
/// `wrt` (the output's cotangent is 1).
pub fn value_and_grad(trace: &Trace, wrt: &[Value]) -> Result<Trace> {
    let scalar = match trace.outputs.as_slice() {
        [o] => trace
            .tensor(*o)
            .filter(|t| t.rank() == 0 && t.dtype.is_float())
            .cloned(),
        _ => None,
    };
    let Some(meta) = scalar else {
        return Err(TransformError::Pass {
            pass: "value_and_grad".into(),
            message: format!(
                "{} must return one floating scalar (a loss), it returns {} values; use grad, which takes the outputs' cotangents",
                trace.name,
                trace.outputs.len()
            ),
        });
    };
    let mut joint = grad(trace, wrt)?;
    let n_in = trace.inputs.len();
    let ct = joint.inputs[n_in];
    joint.inputs.truncate(n_in);
    joint.bound_symbols.insert(
        0,
        BoundSymbol {
            op: Op::Prim(PrimOp::Full),
            args: Vec::new(),
            attrs: vec![
                ints([0usize; 0]),
                Attr::Float(1.0),
                Attr::Device(meta.device),
                Attr::DType(meta.dtype),
            ],
            outputs: vec![ct],
            subsymbols: Vec::new(),
        },
    );
    joint.name = format!("{}_value_and_grad", trace.name);
    joint.verify()?;
    Ok(joint.renumbered())
}

/// The name of output `o`'s cotangent input: `ct_<output>`, or with a numeric suffix where the
/// trace already has a value of that name (the grad of a grad trace, whose inputs include the
/// first grad's cotangents).
fn cotangent_name(trace: &Trace, o: Value) -> String {
    let base = format!("ct_{}", trace.name_of(o));
    let mut name = base.clone();
    let mut k = 1;
    while trace.value_named(&name).is_some() {
        name = format!("{base}_{k}");
        k += 1;
    }
    name
}

/// Options of [`grad_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradOptions {
    /// Differentiate the torch-level ops the op table marks `grad(WHOLE)` whole with
    /// their own rules (the default); `false` sends every torch-level op through its
    /// decomposition (to compare, or to debug a rule).
    pub torch_rules: bool,
}

impl Default for GradOptions {
    fn default() -> Self {
        GradOptions { torch_rules: true }
    }
}

/// [`grad`] with options.
pub fn grad_with(trace: &Trace, wrt: &[Value], options: &GradOptions) -> Result<Trace> {
    for &w in wrt {
        let name = trace.name_of(w).to_string();
        let meta = trace.tensor(w).ok_or_else(|| TransformError::Pass {
            pass: "grad".into(),
            message: format!("{name} is not a tensor input: only tensors have gradients"),
        })?;
        if !trace.inputs.contains(&w) {
            return Err(TransformError::Pass {
                pass: "grad".into(),
                message: format!("{name} is not an input of the trace"),
            });
        }
        if meta.dtype.is_complex() {
            return Err(TransformError::Pass {
                pass: "grad".into(),
                message: format!("{name} has dtype {}: gradients of complex tensors are not supported yet (the VJP rules are written for real inputs; PyTorch's conjugate Wirtinger convention needs conj in each)", meta.dtype),
            });
        }
        if !meta.dtype.is_float() {
            return Err(TransformError::Pass {
                pass: "grad".into(),
                message: format!(
                    "{name} has dtype {}, which has no gradient (only floating tensors do)",
                    meta.dtype
                ),
            });
        }
    }
    let mut b = TraceBuilder::new(format!("{}_grad", trace.name));
    let mut m = copy_inputs(&mut b, trace)?;
    // Forward: replay, and track which values depend on `wrt`. Torch-level ops with their own
    // rule stay whole (an executor runs them as one op); the rest are replaced by their
    // decompositions, down to prims.
    let mut active: HashSet<Value> = wrt.iter().copied().collect();
    let mut units: Vec<&BoundSymbol> = Vec::new();
    let mut stack: Vec<&BoundSymbol> = trace.bound_symbols.iter().rev().collect();
    while let Some(p) = stack.pop() {
        if let Op::Torch(t) = p.op {
            if !(options.torch_rules && crate::rules::torch::differentiates_whole(t, p, &active)) {
                stack.extend(p.subsymbols.iter().rev());
                continue;
            }
        }
        let random = matches!(p.op, Op::Prim(op) if op.is_random());
        b.replay(p, &mut m)?;
        let is_active = p.inputs().iter().any(|v| active.contains(v));
        if is_active && !random {
            crate::util::refuse_complex("grad", p.op, p, trace)?;
        }
        for o in &p.outputs {
            if is_active && !random && trace.tensor(*o).is_some_and(|t| t.dtype.is_float()) {
                active.insert(*o);
            }
        }
        units.push(p);
    }
    // One cotangent per floating tensor output (an output that does not depend on `wrt` still
    // takes one, unused, so that the signature depends on the trace only).
    let mut ct: HashMap<Value, Value> = HashMap::new();
    let mut declared: HashSet<Value> = HashSet::new();
    for &o in &trace.outputs {
        if let Some(t) = trace.tensor(o).filter(|t| t.dtype.is_float()) {
            if !declared.insert(o) {
                continue;
            }
            let meta = TensorMeta {
                requires_grad: false,
                ..t.clone()
            };
            let v = b.input(&cotangent_name(trace, o), meta)?;
            if active.contains(&o) {
                ct.insert(o, v);
            }
        }
    }
    // Backward.
    for p in units.iter().rev() {
        if !p.inputs().iter().any(|v| active.contains(v)) {
            continue;
        }
        let contributions = if p.op == Op::Prim(PrimOp::Aten) {
            // Several outputs may carry gradient: ATen's autograd takes them all at once.
            let cts: Vec<Option<Value>> = p.outputs.iter().map(|o| ct.get(o).copied()).collect();
            crate::rules::opaque::vjp(&mut b, p, &cts, &m, &active, trace)?
        } else {
            // The rules differentiate an op's first output; gradient flowing into another one
            // would be lost, so it is refused instead.
            if let Some(o) = p.outputs.iter().skip(1).find(|o| ct.contains_key(o)) {
                return Err(TransformError::NoRule {
                    op: p.op.qualified_name(),
                    transform: "VJP",
                    reason: format!(
                        "gradient flows into its output {}, and the rule differentiates its first output only",
                        trace.name_of(*o)
                    ),
                });
            }
            let Some(&g) = p.outputs.first().and_then(|o| ct.get(o)) else {
                continue;
            };
            crate::rules::vjp(&mut b, p.op, p, g, &m, trace)?
        };
        for (x, gx) in contributions {
            if !active.contains(&x) {
                continue;
            }
            let acc = match ct.get(&x) {
                Some(&prev) => b.prim(PrimOp::Add, vec![prev.into(), gx.into()], vec![])?,
                None => gx,
            };
            ct.insert(x, acc);
        }
    }
    let mut outputs: Vec<Value> = trace.outputs.iter().map(|o| m[o]).collect();
    for &w in wrt {
        let gw = match ct.get(&w) {
            Some(&g) => g,
            None => {
                let t = trace
                    .tensor(w)
                    .cloned()
                    .unwrap_or_else(|| TensorMeta::new(DType::F32, [0usize; 0]));
                zeros(&mut b, &t)?
            }
        };
        outputs.push(gw);
    }
    // Rules emit the gradients of every operand; those nobody asked for are dropped here.
    Ok(crate::dce::dce(&b.build(&outputs)?)?.renumbered())
}
