//! The forward/backward split of a grad trace: a forward trace that also returns what the backward
//! needs (the saved values), and a backward trace that takes them and the output cotangents.

use crate::grad::{grad_with, GradOptions};
use crate::Result;
use std::collections::HashSet;
use thunder_ir::{BoundSymbol, Trace, Value};

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
/// that the backward needs, chosen by a minimum cut that weighs saving a value (its bytes) against
/// recomputing it with cheap ops (elementwise, shape, conversion) from values saved anyway (see
/// `crate::remat`); the backward starts with those recomputations. The forward is cleaned by dce.
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
    // Which values to save and which to recompute in the backward: a minimum cut (see
    // `crate::remat`) over the values the backward reads.
    let needed = saved_of(&bwd);
    let free: HashSet<Value> = joint.inputs[..n_in]
        .iter()
        .chain(&joint.outputs[..n_out])
        .copied()
        .collect();
    let (saved, recompute) = crate::remat::min_cut(&joint, &fwd, &needed, &free);
    let recomputed: Vec<BoundSymbol> = recompute.iter().map(|&i| fwd[i].clone()).collect();
    let bwd = place_recomputed(recomputed, bwd, &grads);
    if cfg!(debug_assertions) {
        let a: HashSet<Value> = saved_of(&bwd).into_iter().collect();
        let b: HashSet<Value> = saved.iter().copied().collect();
        let diff: Vec<&str> = a
            .symmetric_difference(&b)
            .map(|v| joint.name_of(*v))
            .collect();
        assert!(diff.is_empty(), "remat: the saved values {diff:?} disagree");
    }
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

/// The backward's ops with the recomputed forward ops each placed just before the first op that
/// needs it (not all at the start): what they compute lives only as long as it must, and a
/// layer's recomputation sits next to the layer's backward (where the fusion executor can fuse
/// it with its consumers).
fn place_recomputed(
    recomputed: Vec<BoundSymbol>,
    bwd: Vec<BoundSymbol>,
    outputs: &[Value],
) -> Vec<BoundSymbol> {
    let mut producer: std::collections::HashMap<Value, usize> = std::collections::HashMap::new();
    for (i, b) in recomputed.iter().enumerate() {
        for &o in &b.outputs {
            producer.insert(o, i);
        }
    }
    let inputs: Vec<Vec<Value>> = recomputed.iter().map(|b| b.inputs()).collect();
    let mut emitted = vec![false; recomputed.len()];
    // Emits the recomputed op of `v` after those of its operands (an iterative post-order).
    let mut need = |v: Value, order: &mut Vec<usize>| {
        let Some(&r) = producer.get(&v) else { return };
        let mut stack = vec![(r, false)];
        while let Some((r, expanded)) = stack.pop() {
            if emitted[r] {
                continue;
            }
            if expanded {
                emitted[r] = true;
                order.push(r);
                continue;
            }
            stack.push((r, true));
            for &u in inputs[r].iter().rev() {
                if let Some(&q) = producer.get(&u) {
                    if !emitted[q] {
                        stack.push((q, false));
                    }
                }
            }
        }
    };
    let mut out: Vec<BoundSymbol> = Vec::with_capacity(recomputed.len() + bwd.len());
    let mut slots: Vec<Option<BoundSymbol>> = recomputed.into_iter().map(Some).collect();
    for b in bwd {
        let mut here = Vec::new();
        for v in b.inputs() {
            need(v, &mut here);
        }
        out.extend(here.into_iter().filter_map(|r| slots[r].take()));
        out.push(b);
    }
    let mut here = Vec::new();
    for &v in outputs {
        need(v, &mut here);
    }
    out.extend(here.into_iter().filter_map(|r| slots[r].take()));
    out
}
