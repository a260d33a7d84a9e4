//! The transform checks of the surveys (`tests/grad_ops.rs`, `tests/jvp_ops.rs`,
//! `tests/vmap_ops.rs`): grad, jvp and vmap of one opinfo-db case against PyTorch (autograd, the
//! dot-product test against grad, central finite differences, a loop over the batch). They build
//! on opinfo-db's conformance runner (tensors, eager reference, tolerances, the survey driver),
//! which does not depend on this crate; and [`ThunderTransforms`], what opinfo-db's coverage
//! report asks of the transforms (`tests/coverage.rs`).
//!
//! Each test crate that says `mod support;` uses part of this module.
#![allow(dead_code)]

use opinfo_db::conformance::{
    as_f64, autograd, build, compared_dtype, deviation, excess_over_tolerance, float_inputs,
    gets_recheck, inputs, make_tensor, run, transform_skip, unit_random, upcast, upcast_inputs,
    upcast_tensor, vmap_in_dims, GradOutcome, RANDOM_SEED,
};
use opinfo_db::sample::mix;
use opinfo_db::{OpEntry, Sample, TensorSpec};
use tch::{Kind, Tensor};
use thunder_executors::convert::kind as tch_kind;
use thunder_executors::{ExecutionPlan, RtValue, TorchExecutor};
use thunder_ir::{DType, Trace, Value};

/// thunder-transforms as opinfo-db's coverage report asks of it: whether grad, jvp and vmap build
/// a case's trace. `thunder-bench coverage` has the same three (`thunder_bench::coverage`); the
/// COVERAGE.md test of each crate keeps them in agreement.
pub struct ThunderTransforms;

impl opinfo_db::coverage::Transforms for ThunderTransforms {
    fn grad(&self, trace: &Trace, wrt: &[Value]) -> Result<(), String> {
        thunder_transforms::grad(trace, wrt)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn jvp(&self, trace: &Trace, wrt: &[Value]) -> Result<(), String> {
        thunder_transforms::jvp(trace, wrt)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn vmap(&self, trace: &Trace, in_dims: &[Option<usize>], batch: usize) -> Result<(), String> {
        let options = thunder_transforms::VmapOptions {
            randomness: thunder_transforms::Randomness::Same,
            ..Default::default()
        };
        thunder_transforms::vmap_with(trace, in_dims, batch, &options)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// A transform's answer on a case against what the database expects of the op: a refusal for
/// want of a rule (`TransformError::NoRule`) that the entry lists under `no_rule`, with the listed
/// text in its message, is [`GradOutcome::Refused`] (listed, not failed); one the entry does not
/// list is [`GradOutcome::NoRule`] (the survey fails on it); a trace where the entry expects a
/// refusal, or a refusal without the listed text, is an error. `transform` is the key of
/// `no_rule` (`grad`, `jvp`, `vmap`), `what` names the call in messages.
fn against_db<T>(
    entry: &OpEntry,
    transform: &str,
    what: &str,
    r: Result<T, thunder_transforms::TransformError>,
) -> Result<Result<T, GradOutcome>, String> {
    use thunder_transforms::TransformError;
    let expected = entry.expected_no_rule(transform);
    match r {
        Ok(t) => match expected {
            None => Ok(Ok(t)),
            Some(m) => Err(format!(
                "{what} builds, but the database says it has no rule for {} (no_rule.{transform}: \
                 {m:?}): check the case and remove that line",
                entry.name
            )),
        },
        Err(e @ TransformError::NoRule { .. }) => match expected {
            None => Ok(Err(GradOutcome::NoRule(e.to_string()))),
            Some(m) if e.to_string().contains(m) => Ok(Err(GradOutcome::Refused(e.to_string()))),
            Some(m) => Err(format!(
                "{what} refuses, as the database expects, but without its text {m:?} \
                 (no_rule.{transform}): {e}"
            )),
        },
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Checks `grad` of a case against PyTorch autograd on the same inputs and random output
/// cotangents, in the sample's dtype (use float64 samples for tight tolerances).
pub fn check_grad_case(entry: &OpEntry, sample: &Sample) -> Result<GradOutcome, String> {
    if let Some(skip) = transform_skip(entry, "grad", sample) {
        return Ok(GradOutcome::NoReference(skip));
    }
    let trace = build(sample)?;
    let wrt = float_inputs(&trace);
    let diff_out = trace
        .outputs
        .iter()
        .any(|&o| trace.tensor(o).is_some_and(|t| t.dtype.is_float()));
    if wrt.is_empty() || !diff_out {
        return Ok(GradOutcome::NotApplicable);
    }
    let g = match against_db(
        entry,
        "grad",
        "grad",
        thunder_transforms::grad(&trace, &wrt),
    )? {
        Ok(g) => g,
        Err(outcome) => return Ok(outcome),
    };
    let ins = inputs(sample)?;
    let tensors: Vec<Tensor> = ins
        .iter()
        .filter_map(|v| v.as_tensor().map(|t| t.shallow_clone()))
        .collect();
    // Cotangents for the floating outputs (others get none: the grad trace takes one per
    // differentiable output).
    let mut cts = Vec::new();
    let mut seed = sample.seed;
    for &o in &trace.outputs {
        if let Some(m) = trace.tensor(o).filter(|m| m.dtype.is_float()) {
            seed = mix(seed, 0xc7);
            cts.push((o, unit_random(m, seed)?));
        }
    }
    let expected = match autograd(&trace, &wrt, &tensors, &cts, entry.random)? {
        Ok(e) => e,
        Err(m) => return Ok(GradOutcome::NoReference(m)),
    };
    // thunder's grad trace.
    let gplan = ExecutionPlan::compile(&g, &[&TorchExecutor::new()]).map_err(|e| e.to_string())?;
    let mut gins: Vec<RtValue> = ins;
    gins.extend(cts.iter().map(|(_, t)| RtValue::Tensor(t.shallow_clone())));
    if entry.random {
        tch::manual_seed(RANDOM_SEED);
    }
    let gouts = gplan.run(&gins).map_err(|e| format!("grad trace: {e}"))?;
    let got = &gouts[trace.outputs.len()..];
    let mut reference64: Option<Vec<Tensor>> = None;
    for (k, ((v, e), gv)) in wrt.iter().zip(&expected).zip(got).enumerate() {
        // A gradient has its input's dtype (see `compared_dtype`).
        let dtype = compared_dtype(trace.ty(*v), &trace);
        let tol = entry.tolerance(dtype);
        let gt = as_f64(gv).map_err(|e| e.to_string())?;
        let et = as_f64(&RtValue::Tensor(e.shallow_clone())).map_err(|e| e.to_string())?;
        let (excess, maxd) =
            deviation(&gt, &et, tol.atol * 10.0, tol.rtol * 10.0).map_err(|e| e.to_string())?;
        if excess <= 0.0 {
            continue;
        }
        if !gets_recheck(dtype) {
            return Err(format!(
                "gradient of {}: max abs diff {maxd:.3e} from autograd",
                trace.name_of(*v)
            ));
        }
        // The float64 re-check: autograd in float64 on the same values is the reference, and
        // thunder's gradient must be no farther from it than eager's low-precision one.
        if reference64.is_none() {
            let t64 = build(&upcast(sample))?;
            let ins64: Vec<Tensor> = upcast_inputs(sample)?
                .iter()
                .filter_map(|v| v.as_tensor().map(|t| t.shallow_clone()))
                .collect();
            let cts64 = cts
                .iter()
                .map(|(o, t)| Ok((*o, t.f_to_kind(Kind::Double).map_err(|e| e.to_string())?)))
                .collect::<Result<Vec<_>, String>>()?;
            let wrt64: Vec<thunder_ir::Value> = wrt.clone();
            reference64 = Some(
                autograd(&t64, &wrt64, &ins64, &cts64, entry.random)?
                    .map_err(|m| format!("float64 re-check: autograd fails: {m}"))?,
            );
        }
        let r64 = &reference64.as_ref().ok_or("no float64 reference")?[k];
        let (_, ours) = deviation(&gt, r64, 0.0, 0.0).map_err(|e| e.to_string())?;
        let (_, eager) = deviation(&et, r64, 0.0, 0.0).map_err(|e| e.to_string())?;
        if ours > eager * 1.01 + tol.atol {
            return Err(format!(
                "gradient of {}: max abs diff {maxd:.3e} from autograd, and farther from float64 autograd than eager ({ours:.3e} vs {eager:.3e})",
                trace.name_of(*v)
            ));
        }
    }
    Ok(GradOutcome::Passed)
}

/// The dot-product test of `jvp` against `grad` on a case, in float64:
/// `<J u, v> = <u, J^T v>` for random tangents `u` and cotangents `v`. `grad` is itself checked
/// against PyTorch autograd (`check_grad_case`), so this checks `jvp` against autograd too.
pub fn check_jvp_case(entry: &OpEntry, sample: &Sample) -> Result<GradOutcome, String> {
    let trace = build(sample)?;
    let wrt = float_inputs(&trace);
    let float_outs: Vec<thunder_ir::Value> = trace
        .outputs
        .iter()
        .copied()
        .filter(|&o| trace.tensor(o).is_some_and(|t| t.dtype.is_float()))
        .collect();
    // An empty input has an empty gradient, while a reduction over it is NaN: nothing to compare.
    let empty = wrt
        .iter()
        .any(|&w| trace.tensor(w).is_some_and(|t| t.shape.numel() == 0));
    if wrt.is_empty() || float_outs.is_empty() || empty {
        return Ok(GradOutcome::NotApplicable);
    }
    // Tolerance of the least precise floating dtype involved (conversions to 16-bit floats round).
    let rtol = wrt
        .iter()
        .chain(&float_outs)
        .filter_map(|&v| trace.tensor(v).map(|t| t.dtype))
        .map(|d| match d {
            DType::F64 => 1e-9,
            // float32 sums over attention's near one-hot weights lose ~1e-4 relative.
            DType::F32 => 2e-4,
            DType::F16 => 2e-3,
            _ => 2e-2,
        })
        .fold(1e-9, f64::max);
    let j = match against_db(entry, "jvp", "jvp", thunder_transforms::jvp(&trace, &wrt))? {
        Ok(j) => j,
        Err(outcome) => return Ok(outcome),
    };
    let g = match against_db(
        entry,
        "grad",
        "grad",
        thunder_transforms::grad(&trace, &wrt),
    )? {
        Ok(g) => g,
        Err(outcome) => return Ok(outcome),
    };
    let mut seed = mix(sample.seed, 0x1f);
    let mut us = Vec::new();
    for &w in &wrt {
        seed = mix(seed, 1);
        us.push(unit_random(trace.tensor(w).ok_or("not a tensor")?, seed)?);
    }
    let mut vs = Vec::new();
    for &o in &float_outs {
        seed = mix(seed, 2);
        vs.push(unit_random(trace.tensor(o).ok_or("not a tensor")?, seed)?);
    }
    let ex = TorchExecutor::new();
    let run = |t: &Trace, vals: Vec<RtValue>| -> Result<Vec<RtValue>, String> { run(t, &ex, vals) };
    // J u
    let mut jins = inputs(sample)?;
    jins.extend(us.iter().map(|u| RtValue::Tensor(u.shallow_clone())));
    // A random op draws the same numbers in both traces (see `autograd`).
    if entry.random {
        tch::manual_seed(RANDOM_SEED);
    }
    let jout = run(&j, jins)?;
    let tangents = &jout[trace.outputs.len()..];
    // J^T v (grad takes one cotangent per differentiable output, in output order)
    let mut gins = inputs(sample)?;
    gins.extend(vs.iter().map(|v| RtValue::Tensor(v.shallow_clone())));
    if entry.random {
        tch::manual_seed(RANDOM_SEED);
    }
    let gout = run(&g, gins)?;
    let grads = &gout[trace.outputs.len()..];
    let dot = |a: &RtValue, b: &Tensor| -> Result<f64, String> {
        let a = as_f64(a).map_err(|e| e.to_string())?;
        let b = b.f_to_kind(Kind::Double).map_err(|e| e.to_string())?;
        a.f_mul(&b)
            .and_then(|p| p.f_sum(Kind::Double))
            .and_then(|s| s.f_double_value(&[]))
            .map_err(|e| e.to_string())
    };
    let mut lhs = 0.0;
    for (t, v) in tangents.iter().zip(&vs) {
        lhs += dot(t, v)?;
    }
    let mut rhs = 0.0;
    for (gr, u) in grads.iter().zip(&us) {
        rhs += dot(gr, u)?;
    }
    let scale = lhs.abs().max(rhs.abs()).max(1.0);
    if !((lhs - rhs).abs() <= rtol * scale || (lhs.is_nan() && rhs.is_nan())) {
        return Err(format!(
            "dot-product test: <J u, v> = {lhs} but <u, J^T v> = {rhs}"
        ));
    }
    Ok(GradOutcome::Passed)
}

/// `jvp` of a float64 case against central finite differences:
/// `J u ~ (f(x + h u) - f(x - h u)) / 2h` for a random direction `u` of every floating input
/// (h = 1e-6; the error of the difference is ~h^2, far below the 1e-5 relative tolerance).
pub fn check_jvp_fd_case(entry: &OpEntry, sample: &Sample) -> Result<GradOutcome, String> {
    const H: f64 = 1e-6;
    let trace = build(sample)?;
    let wrt = float_inputs(&trace);
    let float_outs: Vec<usize> = (0..trace.outputs.len())
        .filter(|&i| {
            trace
                .tensor(trace.outputs[i])
                .is_some_and(|t| t.dtype == DType::F64)
        })
        .collect();
    if wrt.is_empty() || float_outs.is_empty() || entry.random || sample.dtype != DType::F64 {
        return Ok(GradOutcome::NotApplicable);
    }
    let j = match against_db(entry, "jvp", "jvp", thunder_transforms::jvp(&trace, &wrt))? {
        Ok(j) => j,
        Err(outcome) => return Ok(outcome),
    };
    let ins = inputs(sample)?;
    let mut seed = mix(sample.seed, 0xfd);
    let mut us = Vec::new();
    for &w in &wrt {
        seed = mix(seed, 1);
        us.push(unit_random(trace.tensor(w).ok_or("not a tensor")?, seed)?);
    }
    let ex = TorchExecutor::eager();
    let shifted = |sign: f64| -> Result<Vec<RtValue>, String> {
        let mut k = 0;
        let mut out = Vec::with_capacity(ins.len());
        for (&v, x) in trace.inputs.iter().zip(&ins) {
            out.push(if wrt.contains(&v) {
                let t = x.as_tensor().ok_or("not a tensor")?;
                let moved = t
                    .f_add(&us[k].f_mul_scalar(sign * H).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
                k += 1;
                RtValue::Tensor(moved)
            } else {
                match x {
                    RtValue::Tensor(t) => RtValue::Tensor(t.shallow_clone()),
                    RtValue::Int(i) => RtValue::Int(*i),
                    RtValue::Float(f) => RtValue::Float(*f),
                    RtValue::Bool(b) => RtValue::Bool(*b),
                }
            });
        }
        Ok(out)
    };
    let plus = run(&trace, &ex, shifted(1.0)?)?;
    let minus = run(&trace, &ex, shifted(-1.0)?)?;
    let mut jins = inputs(sample)?;
    jins.extend(us.iter().map(|u| RtValue::Tensor(u.shallow_clone())));
    let jout = run(&j, &TorchExecutor::new(), jins)?;
    // jvp returns one tangent per floating output, in output order.
    let tangents = &jout[trace.outputs.len()..];
    let float_any: Vec<usize> = (0..trace.outputs.len())
        .filter(|&i| {
            trace
                .tensor(trace.outputs[i])
                .is_some_and(|t| t.dtype.is_float())
        })
        .collect();
    for &i in &float_outs {
        let k = float_any.iter().position(|&x| x == i).ok_or("no tangent")?;
        let p = as_f64(&plus[i]).map_err(|e| e.to_string())?;
        let m = as_f64(&minus[i]).map_err(|e| e.to_string())?;
        let fd = p
            .f_sub(&m)
            .and_then(|d| d.f_div_scalar(2.0 * H))
            .map_err(|e| e.to_string())?;
        let t = as_f64(&tangents[k]).map_err(|e| e.to_string())?;
        let (excess, maxd) = deviation(&t, &fd, 1e-5, 1e-5).map_err(|e| e.to_string())?;
        if excess > 0.0 {
            return Err(format!(
                "output {i}: jvp differs from central finite differences by up to {maxd:.3e}"
            ));
        }
    }
    Ok(GradOutcome::Passed)
}

/// Checks `vmap` of a case against a loop over the batch: a batch of 3 examples, the first tensor
/// input batched at dim 0 (even samples) or at its last dim (odd samples), the second shared by
/// all examples (not batched), the rest batched at dim 0; the reference runs the one-example trace
/// eagerly on each example and stacks the results.
pub fn check_vmap_case(entry: &OpEntry, sample: &Sample) -> Result<GradOutcome, String> {
    const B: usize = 3;
    let trace = build(sample)?;
    let outputs_are_tensors = trace.outputs.iter().all(|&o| trace.tensor(o).is_some());
    if !outputs_are_tensors || trace.outputs.is_empty() {
        return Ok(GradOutcome::NotApplicable);
    }
    if entry.random {
        return check_vmap_random_case(entry, sample, &trace);
    }
    let specs: Vec<TensorSpec> = sample.tensors().into_iter().cloned().collect();
    let in_dims = vmap_in_dims(sample);
    let v = match against_db(
        entry,
        "vmap",
        "vmap",
        thunder_transforms::vmap(&trace, &in_dims, B),
    )? {
        Ok(v) => v,
        Err(outcome) => return Ok(outcome),
    };
    // Per-example inputs: shared inputs are the sample's own tensor, batched ones differ per example.
    let mut examples: Vec<Vec<Tensor>> = Vec::with_capacity(B);
    for e in 0..B {
        let mut ins = Vec::with_capacity(specs.len());
        for (k, spec) in specs.iter().enumerate() {
            let mut sp = spec.clone();
            if in_dims[k].is_some() {
                sp.seed = mix(spec.seed, e as u64 + 1);
            }
            ins.push(make_tensor(&sp).map_err(|e| e.to_string())?);
        }
        examples.push(ins);
    }
    let eager = TorchExecutor::eager();
    let mut expected: Vec<Vec<Tensor>> = (0..trace.outputs.len()).map(|_| Vec::new()).collect();
    for ins in &examples {
        // Copies: a trace that donates its inputs (adamw with inplace=True) overwrites them, and
        // the batched run below needs the originals.
        let outs = run(
            &trace,
            &eager,
            ins.iter().map(|t| RtValue::Tensor(t.copy())).collect(),
        )?;
        for (i, o) in outs.into_iter().enumerate() {
            expected[i].push(o.into_tensor().ok_or("a number output")?);
        }
    }
    let mut batched_ins = Vec::with_capacity(specs.len());
    for (k, d) in in_dims.iter().enumerate() {
        batched_ins.push(RtValue::Tensor(match d {
            None => examples[0][k].shallow_clone(),
            Some(d) => {
                let parts: Vec<&Tensor> = examples.iter().map(|ins| &ins[k]).collect();
                Tensor::f_stack(&parts, *d as i64).map_err(|e| e.to_string())?
            }
        }));
    }
    let got = run(&v, &TorchExecutor::new(), batched_ins)?;
    let mut loop64: Option<Vec<Tensor>> = None;
    for (i, (g, parts)) in got.iter().zip(&expected).enumerate() {
        let tol = entry.tolerance(compared_dtype(trace.ty(trace.outputs[i]), &trace));
        let want = Tensor::f_stack(parts, 0).map_err(|e| e.to_string())?;
        let gt = g.as_tensor().ok_or("a number output")?;
        if gt.size() != want.size() || gt.kind() != want.kind() {
            return Err(format!(
                "output {i}: vmap gives {:?} {:?}, the loop {:?} {:?}",
                gt.kind(),
                gt.size(),
                want.kind(),
                want.size()
            ));
        }
        let want = RtValue::Tensor(want);
        let (excess, maxd) = excess_over_tolerance(tol, 10.0, g, &want)?;
        if excess <= 0.0 {
            continue;
        }
        let dtype = compared_dtype(trace.ty(trace.outputs[i]), &trace);
        if !gets_recheck(dtype) {
            return Err(format!(
                "output {i}: max abs diff {maxd:.3e} from the loop over the batch"
            ));
        }
        // The float64 re-check: the loop in float64 on the same values is the reference, and the
        // batched result must be no farther from it than the loop in the case's own dtype (two
        // algorithms for one op - libtorch's fused attention per example, the decomposition
        // batched - differ by the dtype's rounding, which grows with the values' magnitude).
        if loop64.is_none() {
            loop64 = Some(float64_loop(sample, &examples)?);
        }
        let r64 = &loop64.as_ref().ok_or("no float64 loop")?[i];
        let (_, ours) = deviation(&as_f64(g).map_err(|e| e.to_string())?, r64, 0.0, 0.0)
            .map_err(|e| e.to_string())?;
        let (_, looped) = deviation(&as_f64(&want).map_err(|e| e.to_string())?, r64, 0.0, 0.0)
            .map_err(|e| e.to_string())?;
        if ours > looped * 1.01 + tol.atol {
            return Err(format!(
                "output {i}: max abs diff {maxd:.3e} from the loop over the batch, and farther from the float64 loop than the loop ({ours:.3e} vs {looped:.3e})"
            ));
        }
    }
    Ok(GradOutcome::Passed)
}

/// The outputs of `sample`'s trace in float64 (complex128) run eagerly on each example's inputs
/// (upcast), stacked along a new leading batch dim: the reference of vmap's float64 re-check.
fn float64_loop(sample: &Sample, examples: &[Vec<Tensor>]) -> Result<Vec<Tensor>, String> {
    let trace64 = build(&upcast(sample))?;
    let eager = TorchExecutor::eager();
    let mut outs: Vec<Vec<Tensor>> = (0..trace64.outputs.len()).map(|_| Vec::new()).collect();
    for ins in examples {
        let ins64 = ins
            .iter()
            .map(|t| {
                upcast_tensor(t)
                    .map(RtValue::Tensor)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        for (i, o) in run(&trace64, &eager, ins64)?.into_iter().enumerate() {
            outs[i].push(o.into_tensor().ok_or("a number output")?);
        }
    }
    outs.iter()
        .map(|parts| {
            let stacked = Tensor::f_stack(parts, 0).map_err(|e| e.to_string())?;
            as_f64(&RtValue::Tensor(stacked)).map_err(|e| e.to_string())
        })
        .collect()
}

/// vmap of a random op, which no loop can reproduce: with `Randomness::Same` and `Different`, each
/// output has the batched shape, the dtype and finite values; with `Same`, every example sees the
/// same numbers (equal outputs without tensor inputs, equal dropout masks otherwise); with
/// `Different`, examples of an op without tensor inputs differ.
fn check_vmap_random_case(
    entry: &OpEntry,
    sample: &Sample,
    trace: &Trace,
) -> Result<GradOutcome, String> {
    use thunder_transforms::{vmap_with, Randomness, VmapOptions};
    const B: usize = 3;
    let in_dims = vmap_in_dims(sample);
    let specs: Vec<TensorSpec> = sample.tensors().into_iter().cloned().collect();
    let mut batched_ins = Vec::with_capacity(specs.len());
    for (k, spec) in specs.iter().enumerate() {
        let parts: Vec<Tensor> = (0..B)
            .map(|e| {
                let mut sp = spec.clone();
                sp.seed = mix(spec.seed, e as u64 + 1);
                make_tensor(&sp).map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        batched_ins.push(match in_dims[k] {
            None => parts[0].shallow_clone(),
            Some(d) => Tensor::f_stack(&parts, d as i64).map_err(|e| e.to_string())?,
        });
    }
    for randomness in [Randomness::Same, Randomness::Different] {
        let options = VmapOptions {
            randomness,
            ..VmapOptions::default()
        };
        let what = format!("vmap ({randomness:?})");
        let v = match against_db(
            entry,
            "vmap",
            &what,
            vmap_with(trace, &in_dims, B, &options),
        )? {
            Ok(v) => v,
            Err(outcome) => return Ok(outcome),
        };
        let ins = batched_ins
            .iter()
            .map(|t| RtValue::Tensor(t.shallow_clone()))
            .collect();
        let got = run(&v, &TorchExecutor::new(), ins)?;
        for (i, (g, &o)) in got.iter().zip(&trace.outputs).enumerate() {
            let want = trace.tensor(o).ok_or("a number output")?;
            let gt = g.as_tensor().ok_or("a number output")?;
            let mut shape: Vec<i64> = vec![B as i64];
            shape.extend(want.shape.sizes().iter().map(|&s| s as i64));
            if gt.size() != shape || gt.kind() != tch_kind(want.dtype) {
                return Err(format!(
                    "{randomness:?}: output {i} is {:?} {:?}, not {:?} {shape:?}",
                    gt.kind(),
                    gt.size(),
                    want.dtype
                ));
            }
            let finite = gt
                .f_isfinite()
                .and_then(|f| f.f_all())
                .and_then(|a| a.f_int64_value(&[]))
                .map_err(|e| e.to_string())?;
            if finite != 1 {
                return Err(format!("{randomness:?}: output {i} has non-finite values"));
            }
            if want.shape.numel() == 0 {
                continue;
            }
            // What must be shared (Same) or differ (Different) across examples.
            let key = if specs.is_empty() {
                gt.shallow_clone()
            } else {
                gt.f_eq(0.0).map_err(|e| e.to_string())?
            };
            let same = (1..B as i64).all(|b| key.get(b).equal(&key.get(0)));
            match randomness {
                Randomness::Same if !same => {
                    return Err(format!(
                        "Same: output {i} differs between examples in its random part"
                    ))
                }
                Randomness::Different if specs.is_empty() && same => {
                    return Err(format!(
                        "Different: output {i} is the same for every example"
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(GradOutcome::Passed)
}
