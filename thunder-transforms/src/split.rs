//! The forward/backward split of a grad trace: a forward trace that also returns what the backward
//! needs (the saved values), and a backward trace that takes them and the output cotangents.

use crate::grad::grad;
use crate::Result;
use std::collections::HashSet;
use thunder_ir::{Trace, Value};

/// A forward trace and its backward trace.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardBackward {
    /// Takes the original inputs; returns the original outputs followed by the saved values.
    pub forward: Trace,
    /// Takes the saved values followed by one cotangent per differentiable output (the joint
    /// grad trace's `ct_*` inputs); returns one gradient per `wrt` input.
    pub backward: Trace,
    /// How many of the forward's outputs are saved values (they come after the original outputs).
    pub num_saved: usize,
}

/// Splits `grad(trace, wrt)` into a forward and a backward trace.
///
/// Each bound symbol of the joint trace goes to the backward when it depends on an output
/// cotangent, to the forward otherwise. The saved values are the forward values (inputs included)
/// that the backward reads or returns. The forward is cleaned by dce; which values to recompute
/// rather than save (rematerialization) is decided later, by the fusion executor's min-cut.
pub fn forward_backward(trace: &Trace, wrt: &[Value]) -> Result<ForwardBackward> {
    let joint = grad(trace, wrt)?;
    let n_in = trace.inputs.len();
    let n_out = trace.outputs.len();
    let cts: Vec<Value> = joint.inputs[n_in..].to_vec();
    let mut tainted: HashSet<Value> = cts.iter().copied().collect();
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    for b in &joint.bound_symbols {
        if b.inputs().iter().any(|v| tainted.contains(v)) {
            tainted.extend(b.outputs.iter().copied());
            bwd.push(b.clone());
        } else {
            fwd.push(b.clone());
        }
    }
    let grads: Vec<Value> = joint.outputs[n_out..].to_vec();
    // Saved: read or returned by the backward, defined by the forward or an input.
    let defined_in_bwd: HashSet<Value> =
        bwd.iter().flat_map(|b| b.outputs.iter().copied()).collect();
    let mut saved: Vec<Value> = Vec::new();
    let mut seen = HashSet::new();
    let wanted = bwd
        .iter()
        .flat_map(|b| b.inputs())
        .chain(grads.iter().copied());
    for v in wanted {
        if !defined_in_bwd.contains(&v) && !tainted.contains(&v) && seen.insert(v) {
            saved.push(v);
        }
    }
    let mut forward = joint.clone();
    forward.name = format!("{}_forward", trace.name);
    forward.inputs = joint.inputs[..n_in].to_vec();
    forward.bound_symbols = fwd;
    forward.outputs = joint.outputs[..n_out]
        .iter()
        .copied()
        .chain(saved.iter().copied())
        .collect();
    let forward = crate::dce::dce(&forward)?;
    forward.verify()?;

    let mut backward = joint.clone();
    backward.name = format!("{}_backward", trace.name);
    backward.inputs = saved.iter().copied().chain(cts.iter().copied()).collect();
    backward.bound_symbols = bwd;
    backward.outputs = grads;
    let backward = backward.renumbered();
    backward.verify()?;
    Ok(ForwardBackward {
        forward,
        backward,
        num_saved: saved.len(),
    })
}
