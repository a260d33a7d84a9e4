//! Forward-mode autodiff: a trace, the inputs to perturb and their tangents give a trace that
//! computes the outputs and their tangents (Jacobian-vector products).
//!
//! Like [`crate::grad`], it works on prims (torch-level ops through their decompositions), with one
//! JVP rule per prim; a prim without a rule is a typed error naming it. The rules are filed by op
//! family in [`crate::rules`]; this file is the driver.

use crate::util::{copy_inputs, flatten_prims, zeros};
use crate::{Result, TransformError};
use std::collections::{HashMap, HashSet};
use thunder_ir::{Op, TensorMeta, Trace, TraceBuilder, Value};

/// A trace computing `trace`'s outputs and their tangents along tangents of `wrt`.
///
/// The new trace takes the original inputs followed by one tangent per `wrt` input (`t_<name>`),
/// and returns the original outputs followed by one tangent per floating output (zeros when it
/// does not depend on `wrt`).
pub fn jvp(trace: &Trace, wrt: &[Value]) -> Result<Trace> {
    for &w in wrt {
        let ok = trace.inputs.contains(&w) && trace.tensor(w).is_some_and(|t| t.dtype.is_float());
        if !ok {
            return Err(TransformError::Pass {
                pass: "jvp".into(),
                message: format!(
                    "{} is not a floating tensor input of the trace",
                    trace.name_of(w)
                ),
            });
        }
    }
    let prims = flatten_prims(trace);
    let mut b = TraceBuilder::new(format!("{}_jvp", trace.name));
    let mut m = copy_inputs(&mut b, trace)?;
    let mut tan: HashMap<Value, Value> = HashMap::new();
    for &w in wrt {
        let t = trace
            .tensor(w)
            .cloned()
            .unwrap_or_else(|| TensorMeta::new(thunder_ir::DType::F32, [0usize; 0]));
        let v = b.input(
            &format!("t_{}", trace.name_of(w)),
            TensorMeta {
                requires_grad: false,
                ..t
            },
        )?;
        tan.insert(w, v);
    }
    let active: HashSet<Value> = wrt.iter().copied().collect();
    let mut active = active;
    for p in &prims {
        let op = match p.op {
            Op::Prim(op) => op,
            _ => return Err(crate::util::collective_refused("JVP", p)),
        };
        b.replay(p, &mut m)?;
        let is_active = p.inputs().iter().any(|v| active.contains(v)) && !op.is_random();
        if is_active {
            crate::util::refuse_complex("jvp", p.op, p, trace)?;
        }
        let out_float = trace
            .tensor(p.outputs[0])
            .is_some_and(|t| t.dtype.is_float());
        if !is_active || !out_float {
            continue;
        }
        let t = crate::rules::jvp(&mut b, op, p, &m, &tan, trace)?;
        tan.insert(p.outputs[0], t);
        active.insert(p.outputs[0]);
    }
    let mut outputs: Vec<Value> = trace.outputs.iter().map(|o| m[o]).collect();
    for &o in &trace.outputs {
        let Some(meta) = trace.tensor(o).filter(|t| t.dtype.is_float()).cloned() else {
            continue;
        };
        let t = match tan.get(&o) {
            Some(&t) => t,
            None => zeros(&mut b, &meta)?,
        };
        outputs.push(t);
    }
    Ok(b.build(&outputs)?)
}
