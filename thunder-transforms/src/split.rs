//! The forward/backward split of a grad trace: a forward trace that also returns what the backward
//! needs (the saved values), and a backward trace that takes them and the output cotangents.

use crate::grad::{grad_with, GradOptions};
use crate::Result;
use std::collections::{HashMap, HashSet};
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{BoundSymbol, Op, PrimOp, Trace, Value};

/// Ops cheap enough to recompute in the backward rather than save: elementwise prims, shape
/// prims and dtype conversions (never random or in-place ones, never reductions or matmuls).
fn cheap(b: &BoundSymbol) -> bool {
    use PrimOp::*;
    match b.op {
        Op::Prim(p) => {
            matches!(
                p.class(),
                PrimClass::Unary | PrimClass::Binary | PrimClass::Ternary
            ) || matches!(
                p,
                ConvertElementType
                    | BroadcastInDim
                    | Reshape
                    | Transpose
                    | Squeeze
                    | Slice
                    | Full
                    | Iota
            )
        }
        Op::Torch(_) => false,
    }
}

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

impl ForwardBackward {
    /// The saved values: the forward's outputs after the original ones.
    pub fn saved(&self) -> &[Value] {
        &self.forward.outputs[self.forward.outputs.len() - self.num_saved..]
    }
    /// Bytes the saved tensors take (numel times element size; numbers count 0): what the forward
    /// keeps alive for the backward.
    pub fn saved_bytes(&self) -> usize {
        self.saved()
            .iter()
            .filter_map(|&v| self.forward.tensor(v))
            .map(|t| t.shape.numel() * t.dtype.itemsize())
            .sum()
    }
}

/// Splits `grad(trace, wrt)` into a forward and a backward trace.
///
/// Each bound symbol of the joint trace goes to the backward when it depends on an output
/// cotangent, to the forward otherwise. The saved values are the forward values (inputs included)
/// that the backward reads or returns, less those that are cheaper to recompute: a saved value
/// made by a cheap op (elementwise, shape, conversion) whose operands take fewer bytes, or are
/// saved anyway, is recomputed at the start of the backward instead. The forward is cleaned by
/// dce. A min-cut over fused regions (the fusion executor's) can replace this greedy choice.
pub fn forward_backward(trace: &Trace, wrt: &[Value]) -> Result<ForwardBackward> {
    forward_backward_with(trace, wrt, &GradOptions::default())
}

/// [`forward_backward`] with [`grad_with`]'s options.
pub fn forward_backward_with(
    trace: &Trace,
    wrt: &[Value],
    options: &GradOptions,
) -> Result<ForwardBackward> {
    let joint = grad_with(trace, wrt, options)?;
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
    let saved_of = |bwd: &[BoundSymbol]| -> Vec<Value> {
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
        saved
    };
    // Recompute instead of save: a saved value made by a cheap op (elementwise, shape, dtype
    // conversion) from values that are saved anyway, or that are smaller, is recomputed at the
    // start of the backward. Repeated until no such value is left; each step saves bytes.
    let bytes = |v: Value| {
        joint
            .tensor(v)
            .map_or(0, |t| t.shape.numel() * t.dtype.itemsize())
    };
    let producer: HashMap<Value, usize> = fwd
        .iter()
        .enumerate()
        .flat_map(|(i, b)| b.outputs.iter().map(move |&o| (o, i)))
        .collect();
    let mut recomputed: Vec<usize> = Vec::new();
    loop {
        let mut all_bwd: Vec<BoundSymbol> = recomputed.iter().map(|&i| fwd[i].clone()).collect();
        all_bwd.extend(bwd.iter().cloned());
        let saved = saved_of(&all_bwd);
        let saved_set: HashSet<Value> = saved.iter().copied().collect();
        let pick = saved.iter().find_map(|&v| {
            let &i = producer.get(&v)?;
            let p = &fwd[i];
            if recomputed.contains(&i) || !cheap(p) {
                return None;
            }
            let added: usize = p
                .inputs()
                .into_iter()
                .collect::<HashSet<_>>()
                .into_iter()
                .filter(|x| !saved_set.contains(x))
                .map(bytes)
                .sum();
            let removed: usize = p.outputs.iter().map(|&o| bytes(o)).sum();
            (added < removed).then_some(i)
        });
        match pick {
            Some(i) => {
                recomputed.push(i);
                recomputed.sort_unstable();
            }
            None => break,
        }
    }
    let mut all_bwd: Vec<BoundSymbol> = recomputed.iter().map(|&i| fwd[i].clone()).collect();
    all_bwd.extend(bwd);
    let bwd = all_bwd;
    let saved = saved_of(&bwd);
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
