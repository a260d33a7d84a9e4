//! The conformance runner: every sample of an op, built as a one-op trace with thunder-ir, run by
//! thunder-executors along two paths - the torch executor calling libtorch's op directly where it
//! does ([`TorchExecutor::new`]) and every torch-level op decomposed into prims
//! ([`TorchExecutor::decomposing`]) - and compared against eager libtorch
//! ([`TorchExecutor::eager`]: one ATen call per op) on the same inputs.
//!
//! Checks per case:
//! - each output's shape, dtype and device equal what the meta function predicted (for all three
//!   runs);
//! - values agree within the entry's tolerance for the dtype; where a low-precision result
//!   disagrees, the reference is recomputed in float64 and the case passes only if thunder's result
//!   is no farther from it than eager's (Lightning Thunder's `assert_closer` rule);
//! - random ops (`random: true`) are compared by metadata and finiteness only.
//!
//! The same module holds what the transform checks (grad, jvp and vmap against PyTorch, in
//! thunder-transforms' `tests/support/mod.rs`) build on without this crate depending on
//! thunder-transforms: the tensors ([`make_tensor`], [`inputs`], [`unit_random`]), the eager
//! reference ([`run`], [`autograd`]), the tolerance comparison ([`compared_dtype`],
//! [`excess_over_tolerance`], [`deviation`], the float64 re-check's [`upcast`]) and the survey
//! driver ([`survey`], which takes the per-case check as a closure, and [`Survey::report`]).
//!
//! For prims the eager reference is the same ATen call the executor makes, so their cases check
//! metadata, dtype handling and that every listed sample runs; the numeric comparison that matters
//! is a torch-level op's decomposition against ATen's own op.

use crate::sample::{mix, Sample, SampleArg, TensorSpec};
use crate::{OpDb, OpEntry, Tolerance};
use tch::{Kind, Tensor};
use thunder_executors::convert::{device as tch_device, kind as tch_kind};
use thunder_executors::{
    ExecutionPlan, Executor, KernelError as KernelErrorText, RtValue, TorchExecutor,
};
use thunder_ir::{DType, Device, Trace, ValueType};

/// The seed every conformance run uses (samples and tensor values derive from it).
pub const SEED: u64 = 0x0074_6875_6e64_6572; // "thunder" in ASCII

/// The outcome of running one op's cases on one device.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Cases run.
    pub cases: usize,
    /// Cases skipped by the YAML (`skips`).
    pub skipped: usize,
    /// Cases that passed only through the float64 re-check.
    pub rechecked: usize,
    /// One line per failing case: op, sample, dtype, device, path and what differed.
    pub failures: Vec<String>,
}

/// A tensor made deterministically from its spec: uniform values in the spec's range (integers
/// and bool drawn from the half-open range), on the spec's device, non-contiguous if asked.
pub fn make_tensor(spec: &TensorSpec) -> Result<Tensor, tch::TchError> {
    let (lo, hi) = spec.value_range();
    let n = spec.numel();
    let complex = spec.dtype.is_complex();
    let draws = if complex { 2 * n } else { n };
    let noncontig = spec.noncontiguous && !spec.shape.is_empty();
    // Non-contiguous: twice the elements along the last dim, every other one taken.
    let total = if noncontig { 2 * draws } else { draws };
    let mut state = spec.seed;
    let mut vals = Vec::with_capacity(total);
    for _ in 0..total {
        state = mix(state, 0x5eed);
        let u = (state >> 11) as f64 / (1u64 << 53) as f64;
        let v = lo + u * (hi - lo);
        vals.push(if spec.dtype.is_float() || complex {
            v
        } else {
            v.floor().min(hi - 1.0).max(lo)
        });
    }
    let mut shape: Vec<i64> = spec.shape.iter().map(|&s| s as i64).collect();
    if noncontig {
        if let Some(last) = shape.last_mut() {
            *last *= 2;
        }
    }
    let mut t = Tensor::from_slice(&vals);
    t = if complex {
        let mut s2 = shape.clone();
        s2.push(2);
        t.f_reshape(s2.as_slice())?.f_view_as_complex()?
    } else {
        t.f_reshape(shape.as_slice())?
    };
    t = t
        .f_to_kind(tch_kind(spec.dtype))?
        .f_to_device(tch_device(spec.device))?;
    if noncontig {
        let last = shape.len() as i64 - 1;
        t = t.f_slice(last, 0, shape[shape.len() - 1], 2)?;
    }
    Ok(t)
}

/// The sample's tensors, freshly made (a run may write into them: `copy_`).
pub fn inputs(sample: &Sample) -> Result<Vec<RtValue>, String> {
    sample
        .tensors()
        .iter()
        .map(|s| {
            make_tensor(s)
                .map(RtValue::Tensor)
                .map_err(|e| format!("cannot make input {s}: {e}"))
        })
        .collect()
}

/// Compiles `trace` for `ex` alone and runs it on `ins`; errors name the executor.
pub fn run(trace: &Trace, ex: &dyn Executor, ins: Vec<RtValue>) -> Result<Vec<RtValue>, String> {
    let plan =
        ExecutionPlan::compile(trace, &[ex]).map_err(|e| format!("{}: compile: {e}", ex.name()))?;
    plan.run(&ins).map_err(|e| format!("{}: {e}", ex.name()))
}

/// A value as a float64 tensor (complex as its real view, a number as a one-element tensor).
pub fn as_f64(v: &RtValue) -> Result<Tensor, tch::TchError> {
    match v {
        RtValue::Tensor(t) if matches!(t.kind(), Kind::ComplexFloat | Kind::ComplexDouble) => {
            t.f_view_as_real()?.f_to_kind(Kind::Double)
        }
        RtValue::Tensor(t) => t.f_to_kind(Kind::Double),
        RtValue::Int(i) => Tensor::f_from_slice(&[*i as f64]),
        RtValue::Float(f) => Tensor::f_from_slice(&[*f]),
        RtValue::Bool(b) => Tensor::f_from_slice(&[*b as i64 as f64]),
    }
}

/// Largest violation of `|a - b| <= atol + rtol * |b|` (0 when within tolerance) and the largest
/// absolute difference; NaN matches NaN, infinities must match exactly.
pub fn deviation(
    a: &Tensor,
    b: &Tensor,
    atol: f64,
    rtol: f64,
) -> Result<(f64, f64), tch::TchError> {
    let (a, b) = (
        a.f_to_device(tch::Device::Cpu)?,
        b.f_to_device(tch::Device::Cpu)?,
    );
    let both_nan = a.f_isnan()?.f_logical_and(&b.f_isnan()?)?;
    let same = a.f_eq_tensor(&b)?.f_logical_or(&both_nan)?;
    let diff = a.f_sub(&b)?.f_abs()?.f_masked_fill(&same, 0.0)?;
    // A NaN difference (NaN against a number, inf against a different value) is a full miss.
    let diff = diff.f_nan_to_num(f64::INFINITY, f64::INFINITY, f64::INFINITY)?;
    let allowed = b
        .f_abs()?
        .f_mul_scalar(rtol)?
        .f_add_scalar(atol)?
        .f_nan_to_num(0.0, 0.0, 0.0)?;
    let excess = diff.f_sub(&allowed)?.f_clamp_min(0.0)?;
    let maxd = if diff.numel() == 0 {
        0.0
    } else {
        diff.f_max()?.f_double_value(&[])?
    };
    let maxe = if excess.numel() == 0 {
        0.0
    } else {
        excess.f_max()?.f_double_value(&[])?
    };
    Ok((maxe, maxd))
}

/// Checks an output's metadata against the trace's prediction.
fn check_meta(expected: &ValueType, got: &RtValue) -> Result<(), String> {
    match (expected, got) {
        (ValueType::Tensor(m), RtValue::Tensor(t)) => {
            let shape: Vec<i64> = m.shape.sizes().iter().map(|&s| s as i64).collect();
            if t.size() != shape
                || t.kind() != tch_kind(m.dtype)
                || t.device() != tch_device(m.device)
            {
                return Err(format!(
                    "metadata: the meta function predicts {m} but the result is {:?} {:?}{:?}",
                    t.device(),
                    t.kind(),
                    t.size()
                ));
            }
            Ok(())
        }
        (ValueType::Number(_), RtValue::Tensor(_)) => {
            Err("metadata: predicted a number, got a tensor".into())
        }
        (ValueType::Tensor(m), _) => Err(format!("metadata: predicted {m}, got a number")),
        (ValueType::Number(_), _) => Ok(()),
    }
}

/// The same sample with floating inputs in float64 (complex in complex128), for the re-check.
pub fn upcast(sample: &Sample) -> Sample {
    let up = |t: &TensorSpec| {
        let mut t = t.clone();
        if t.dtype.is_float() {
            t.dtype = DType::F64;
        } else if t.dtype.is_complex() {
            t.dtype = DType::C128;
        }
        t
    };
    let mut s = sample.clone();
    s.args = s
        .args
        .iter()
        .map(|a| match a {
            SampleArg::Tensor(t) => SampleArg::Tensor(up(t)),
            SampleArg::List(l) => SampleArg::List(l.iter().map(up).collect()),
            other => other.clone(),
        })
        .collect();
    s.attrs = s
        .attrs
        .iter()
        .map(|a| match a {
            thunder_ir::Attr::DType(d) if d.is_float() => thunder_ir::Attr::DType(DType::F64),
            other => other.clone(),
        })
        .collect();
    s
}

/// The upcast sample's inputs: the very values of the original inputs, converted.
pub fn upcast_inputs(sample: &Sample) -> Result<Vec<RtValue>, String> {
    let orig = inputs(sample)?;
    orig.into_iter()
        .map(|v| match v {
            RtValue::Tensor(t) => upcast_tensor(&t)
                .map(RtValue::Tensor)
                .map_err(|e| e.to_string()),
            other => Ok(other),
        })
        .collect()
}

/// `t` in float64 (complex128) when it is a floating (complex) tensor of lower precision, else
/// unchanged: the inputs of the float64 re-checks.
pub fn upcast_tensor(t: &Tensor) -> Result<Tensor, tch::TchError> {
    let k = match t.kind() {
        Kind::Half | Kind::BFloat16 | Kind::Float | Kind::Float8e4m3fn | Kind::Float8e5m2 => {
            Kind::Double
        }
        Kind::ComplexFloat | Kind::ComplexHalf => Kind::ComplexDouble,
        k => k,
    };
    t.f_to_kind(k)
}

/// The dtype whose tolerance a compared value of `trace` (of type `ty`) takes: for an integer
/// or bool value its own (compared exactly); for a float value, the least precise of its own
/// dtype and the floating dtypes of the trace's inputs and outputs, since it carries their
/// rounding (the float64 gradient of an input that meets a bfloat16 one is as precise as
/// bfloat16 arithmetic). Never the sample's dtype as such: an op of integer inputs may give a
/// float (atan2, mean, true division), and compared exactly, a batched kernel that differs
/// from the per-sample one by an ulp fails on one CPU and passes on another (libtorch picks
/// kernels by SIMD width). A Python float output counts as float64.
pub fn compared_dtype(ty: &ValueType, trace: &Trace) -> DType {
    let own = match ty {
        ValueType::Tensor(m) => m.dtype,
        ValueType::Number(thunder_ir::NumberType::Float) => DType::F64,
        ValueType::Number(_) => return DType::I64,
    };
    if !(own.is_float() || own.is_complex()) {
        return own;
    }
    trace
        .inputs
        .iter()
        .chain(&trace.outputs)
        .filter_map(|&v| trace.tensor(v).map(|t| t.dtype))
        .filter(|d| d.is_float() || d.is_complex())
        .fold(own, |a, b| {
            if Tolerance::default_for(b).rtol > Tolerance::default_for(a).rtol {
                b
            } else {
                a
            }
        })
}

/// By how much `got` misses `want` beyond `tol` scaled by `factor` (0 when within), and the
/// largest absolute difference.
pub fn excess_over_tolerance(
    tol: Tolerance,
    factor: f64,
    got: &RtValue,
    want: &RtValue,
) -> Result<(f64, f64), String> {
    let (g, w) = (
        as_f64(got).map_err(|e| e.to_string())?,
        as_f64(want).map_err(|e| e.to_string())?,
    );
    deviation(&g, &w, tol.atol * factor, tol.rtol * factor).map_err(|e| e.to_string())
}

/// Whether a value of `dtype` that misses eager's tolerance gets the float64 re-check
/// (`torch.testing`'s assert_close re-check for low precision): float32 and lower, complex64.
pub fn gets_recheck(dtype: DType) -> bool {
    dtype.is_low_precision_float() || dtype == DType::C64 || dtype == DType::F32
}

/// The sample's one-op trace; the error says that the trace builder rejects it.
pub fn build(sample: &Sample) -> Result<Trace, String> {
    sample
        .build_trace()
        .map_err(|e| format!("the trace builder rejects the sample: {e}"))
}

/// Runs one case (any sample of `entry`, listed or generated by [`OpEntry::strategy`]):
/// `Ok(true)` when it passed through the float64 re-check, `Err` with what differed.
pub fn check_case(entry: &OpEntry, sample: &Sample) -> Result<bool, String> {
    let trace = build(sample)?;
    let expected: Vec<ValueType> = trace.outputs.iter().map(|&v| trace.ty(v).clone()).collect();
    let reference = run(&trace, &TorchExecutor::eager(), inputs(sample)?)?;
    for (e, r) in expected.iter().zip(&reference) {
        check_meta(e, r).map_err(|m| format!("eager: {m}"))?;
    }
    let mut rechecked = false;
    let (direct, decomposing) = (TorchExecutor::new(), TorchExecutor::decomposing());
    let mut paths: Vec<(&str, Vec<&dyn Executor>)> = vec![
        (direct.name(), vec![&direct]),
        (decomposing.name(), vec![&decomposing]),
    ];
    // On CUDA, the fused cross entropy, the multi-tensor AdamW and the fusion executor run
    // every op they can (the rest on the torch executor).
    let (xent, adamw, fusion) = (
        thunder_executors::CrossEntropyExecutor,
        thunder_executors::AdamwExecutor,
        thunder_executors::FusionExecutor,
    );
    if sample.device.is_cuda() {
        paths.push(("fusion", vec![&xent, &adamw, &fusion, &direct]));
    }
    for (name, list) in &paths {
        let got = ExecutionPlan::compile(&trace, list)
            .map_err(|e| format!("{name}: {e}"))?
            .run(&inputs(sample)?)
            .map_err(|e| format!("{name}: {e}"))?;
        for (i, ((e, g), r)) in expected.iter().zip(&got).zip(&reference).enumerate() {
            check_meta(e, g).map_err(|m| format!("{}: output {i}: {m}", name))?;
            if entry.random {
                if let RtValue::Tensor(t) = g {
                    let finite = t
                        .f_isfinite()
                        .and_then(|f| f.f_all())
                        .map(|a| a.int64_value(&[]) != 0)
                        .unwrap_or(false);
                    if !finite && t.numel() > 0 {
                        return Err(format!(
                            "{}: output {i}: random op produced non-finite values",
                            name
                        ));
                    }
                }
                continue;
            }
            let (gf, rf) = (
                as_f64(g).map_err(|e| e.to_string())?,
                as_f64(r).map_err(|e| e.to_string())?,
            );
            let dtype = compared_dtype(e, &trace);
            let tol = entry.tolerance(dtype);
            let (excess, maxd) =
                deviation(&gf, &rf, tol.atol, tol.rtol).map_err(|e| e.to_string())?;
            if excess == 0.0 {
                continue;
            }
            if !gets_recheck(dtype) {
                return Err(format!(
                    "{}: output {i}: max abs diff {maxd:.3e} from eager exceeds atol {} + rtol {} (by {excess:.3e})",
                    name,
                    tol.atol,
                    tol.rtol
                ));
            }
            // assert_closer: compare both with a float64 computation of the same sample.
            let s64 = upcast(sample);
            let t64 = build(&s64)?;
            let r64 = run(&t64, &TorchExecutor::eager(), upcast_inputs(sample)?)?;
            let ref64 = as_f64(&r64[i]).map_err(|e| e.to_string())?;
            let (_, ours) = deviation(&gf, &ref64, 0.0, 0.0).map_err(|e| e.to_string())?;
            let (_, eager) = deviation(&rf, &ref64, 0.0, 0.0).map_err(|e| e.to_string())?;
            if ours > eager * 1.01 + tol.atol {
                return Err(format!(
                    "{}: output {i}: max abs diff {maxd:.3e} from eager, and farther from float64 than eager ({ours:.3e} vs {eager:.3e})",
                    name
                ));
            }
            rechecked = true;
        }
    }
    Ok(rechecked)
}

/// Runs every case of `entry` on `device` (seeded with [`SEED`]).
pub fn check_entry(entry: &OpEntry, device: Device) -> Report {
    let mut report = Report::default();
    for (sample, skip) in entry.cases(device, SEED) {
        if skip.is_some() {
            report.skipped += 1;
            continue;
        }
        report.cases += 1;
        // libtorch raises C++ exceptions as errors; a panic here is a bug of ours, reported as a
        // failure of the case rather than aborting the whole op.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_case(entry, &sample)));
        match outcome {
            Ok(Ok(rechecked)) => report.rechecked += rechecked as usize,
            Ok(Err(m)) => report.failures.push(format!("{sample}\n    {m}")),
            Err(_) => report.failures.push(format!("{sample}\n    panicked")),
        }
    }
    report
}

/// Loads the builtin database and runs `op`'s cases on `device`.
pub fn check_op(op: &str, device: Device) -> Result<Report, String> {
    let db = OpDb::builtin().map_err(|e| e.to_string())?;
    let entry = db
        .by_name(op)
        .ok_or_else(|| format!("no entry named {op} in opinfo-db"))?;
    Ok(check_entry(entry, device))
}

/// The floating tensor inputs of a trace: what the transform checks differentiate.
pub fn float_inputs(trace: &Trace) -> Vec<thunder_ir::Value> {
    trace
        .inputs
        .iter()
        .copied()
        .filter(|&v| trace.tensor(v).is_some_and(|t| t.dtype.is_float()))
        .collect()
}

/// A tensor of `meta`'s shape, dtype and device, uniform in [-1, 1) from `seed`: the tangents and
/// cotangents of the transform checks.
pub fn unit_random(meta: &thunder_ir::TensorMeta, seed: u64) -> Result<Tensor, String> {
    make_tensor(&TensorSpec {
        shape: meta.shape.sizes(),
        dtype: meta.dtype,
        device: meta.device,
        domain: Some((-1.0, 1.0)),
        noncontiguous: false,
        seed,
    })
    .map_err(|e| e.to_string())
}

/// The outcome of a grad check of one case.
#[derive(Debug, Clone, PartialEq)]
pub enum GradOutcome {
    /// Gradients match autograd.
    Passed,
    /// thunder-transforms has no VJP rule for a prim the op decomposes into (the message names it).
    NoRule(String),
    /// The transform refuses the op for want of a rule, as the database's `no_rule` says it does
    /// (the refusal's message): listed, not failed.
    Refused(String),
    /// Nothing to differentiate (no floating tensor input, or a non-differentiable output).
    NotApplicable,
    /// PyTorch's autograd itself fails on the case (the message says how): no reference.
    NoReference(String),
}

/// The reason of the database's skip of `transform`'s check of a case, if it has one.
pub fn transform_skip(entry: &OpEntry, transform: &str, sample: &Sample) -> Option<String> {
    let device = if sample.device.is_cuda() {
        crate::DeviceKind::Cuda
    } else {
        crate::DeviceKind::Cpu
    };
    entry
        .transform_skip(transform, device, sample.dtype, sample.index)
        .map(|s| format!("skipped by the database: {}", s.reason))
}

/// The seed of libtorch's generator before each run of a random op's grad check.
pub const RANDOM_SEED: i64 = 0x5eed;

/// PyTorch autograd on the eager run of `trace`: the gradients of `sum(output * cotangent)` with
/// respect to `wrt`, in `wrt`'s order; `Ok(Err(..))` when autograd itself fails on the case.
///
/// A random op (dropout) runs through its decomposition with libtorch's generator seeded with
/// [`RANDOM_SEED`], as thunder's grad trace runs: both draw the same random numbers, so autograd
/// differentiates the very function thunder's trace computes.
pub fn autograd(
    trace: &Trace,
    wrt: &[thunder_ir::Value],
    tensors: &[Tensor],
    cts: &[(thunder_ir::Value, Tensor)],
    random: bool,
) -> Result<Result<Vec<Tensor>, String>, String> {
    let leaves: Vec<Tensor> = tensors
        .iter()
        .map(|t| {
            if t.is_floating_point() {
                t.detach().set_requires_grad(true)
            } else {
                t.shallow_clone()
            }
        })
        .collect();
    let ex = if random {
        tch::manual_seed(RANDOM_SEED);
        TorchExecutor::decomposing()
    } else {
        TorchExecutor::eager()
    };
    let plan = ExecutionPlan::compile(trace, &[&ex]).map_err(|e| e.to_string())?;
    let outs = plan.run_tensors(&leaves).map_err(|e| e.to_string())?;
    let mut loss = Tensor::zeros([], (Kind::Double, tch::Device::Cpu));
    for (o, ct) in cts {
        let i = trace.outputs.iter().position(|x| x == o).unwrap_or(0);
        loss += outs[i]
            .f_mul(ct)
            .and_then(|t| t.f_sum(Kind::Double))
            .map_err(|e| e.to_string())?
            .f_to_device(tch::Device::Cpu)
            .map_err(|e| e.to_string())?;
    }
    let wrt_leaves: Vec<&Tensor> = trace
        .inputs
        .iter()
        .zip(&leaves)
        .filter(|(v, _)| wrt.contains(v))
        .map(|(_, t)| t)
        .collect();
    if !loss.requires_grad() {
        // No output depends on the inputs (dropout with p = 1 is all zeros): the gradients are
        // zeros. (libtorch's backward must not be called on a graph-less loss: it crashes.)
        return Ok(wrt_leaves
            .iter()
            .map(|t| t.f_zeros_like().map_err(|e| e.to_string()))
            .collect());
    }
    Ok(Tensor::f_run_backward(&[loss], &wrt_leaves, false, false)
        .map_err(|e| KernelErrorText::from(e).0))
}

/// The in_dims that the vmap survey (`check_vmap_case` in thunder-transforms' tests) and the
/// coverage report use for a sample's tensor inputs: the first batched at dim 0 (even samples) or
/// at its last dim (odd samples), the second shared, the rest batched at dim 0. An op that writes
/// into an operand (`copy_`) has every input batched: writing a batch into a shared tensor is
/// refused, as `torch.func.vmap` refuses it.
pub fn vmap_in_dims(sample: &Sample) -> Vec<Option<usize>> {
    let inplace = matches!(sample.op, thunder_ir::Op::Prim(p) if p.is_inplace());
    sample
        .tensors()
        .iter()
        .enumerate()
        .map(|(k, t)| match k {
            1 if !inplace => None,
            0 if sample.index % 2 == 1 => Some(t.shape.len()),
            _ => Some(0),
        })
        .collect()
}

/// What a transform test found over the database: see [`survey`].
#[derive(Debug, Default)]
pub struct Survey {
    /// Cases checked, per op.
    pub passed: std::collections::BTreeMap<String, usize>,
    /// Ops with a missing rule, and the error naming it.
    pub no_rule: std::collections::BTreeMap<String, String>,
    /// Ops whose refusal the database expects (`no_rule`), and the refusal.
    pub refused: std::collections::BTreeMap<String, String>,
    /// Cases whose reference itself failed (listed, not failed).
    pub no_reference: Vec<String>,
    /// Failing cases: sample and what differed.
    pub failures: Vec<String>,
    /// The device the cases ran on.
    pub device: Option<Device>,
}

/// The device the transform surveys run on: `OPINFO_DEVICE=cuda` (cuda:0) or `cpu` (the
/// default). Asking for CUDA on a machine without it panics: a request that cannot be honoured is
/// never turned into a CPU run.
pub fn survey_device() -> Device {
    match std::env::var("OPINFO_DEVICE").as_deref() {
        Err(_) | Ok("") | Ok("cpu") => Device::Cpu,
        Ok("cuda") | Ok("cuda:0") => {
            assert!(
                tch::Cuda::is_available(),
                "OPINFO_DEVICE=cuda, but libtorch sees no CUDA device"
            );
            Device::Cuda(0)
        }
        Ok(other) => panic!("OPINFO_DEVICE={other:?}: use \"cpu\" or \"cuda\""),
    }
}

/// Runs `check` on every sample on [`survey_device`], of each of `dtypes`, of the entries
/// `select` keeps (skips honoured), and sorts the outcomes.
pub fn survey(
    db: &OpDb,
    select: impl Fn(&OpEntry) -> bool,
    dtypes: &[DType],
    check: impl Fn(&OpEntry, &Sample) -> Result<GradOutcome, String>,
) -> Survey {
    let device = survey_device();
    let kind = if device.is_cuda() {
        crate::DeviceKind::Cuda
    } else {
        crate::DeviceKind::Cpu
    };
    let mut s = Survey {
        device: Some(device),
        ..Survey::default()
    };
    // OPINFO_VERBOSE=1 names each case before it runs (to find one that crashes the process).
    let verbose = std::env::var_os("OPINFO_VERBOSE").is_some_and(|v| v == "1");
    for e in db.entries().iter().filter(|e| select(e)) {
        for &dtype in dtypes {
            if !e.supports(device, dtype) {
                continue;
            }
            for sample in e.samples(device, dtype, SEED) {
                if e.skip_for(kind, dtype, sample.index).is_some() {
                    continue;
                }
                if verbose {
                    eprintln!("  {sample}");
                }
                match check(e, &sample) {
                    Ok(GradOutcome::Passed) => *s.passed.entry(e.name.clone()).or_default() += 1,
                    Ok(GradOutcome::NoRule(m)) => {
                        s.no_rule.insert(e.name.clone(), m);
                    }
                    Ok(GradOutcome::Refused(m)) => {
                        s.refused.insert(e.name.clone(), m);
                    }
                    Ok(GradOutcome::NotApplicable) => {}
                    Ok(GradOutcome::NoReference(m)) => {
                        s.no_reference.push(format!("{sample}: {m}"))
                    }
                    Err(m) => s.failures.push(format!("{sample}\n    {m}")),
                }
            }
        }
    }
    s
}

impl Survey {
    /// Prints what was checked and what has no rule, then fails on any failing case, on any op
    /// without a rule that the database does not expect to refuse (its `no_rule`), or when fewer
    /// than `floor` ops were checked (`what` names the check in the messages).
    pub fn report(&self, what: &str, floor: usize) {
        let on = self.device.map(|d| format!(" on {d}")).unwrap_or_default();
        eprintln!(
            "{what}{on}: {} ops, {} cases",
            self.passed.len(),
            self.passed.values().sum::<usize>()
        );
        for (op, why) in &self.refused {
            eprintln!("  no rule, as the database says (no_rule): {op}: {why}");
        }
        for (op, why) in &self.no_rule {
            eprintln!("  no rule: {op}: {why}");
        }
        for m in &self.no_reference {
            eprintln!("  no reference: {m}");
        }
        // A case PyTorch cannot check is listed in the database with its reason; any other is
        // a change to look at.
        let unlisted: Vec<&String> = self
            .no_reference
            .iter()
            .filter(|m| !m.contains("skipped by the database"))
            .collect();
        assert!(
            unlisted.is_empty(),
            "{what}: PyTorch gives no reference for {} cases that the database does not skip:\n{}",
            unlisted.len(),
            unlisted
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            self.no_rule.is_empty(),
            "{what}: {} ops have no rule:\n{}",
            self.no_rule.len(),
            self.no_rule
                .iter()
                .map(|(op, why)| format!("  {op}: {why}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            self.failures.is_empty(),
            "{} cases of {what} fail:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        assert!(
            self.passed.len() >= floor,
            "{what}: only {} ops checked, fewer than the floor {floor}",
            self.passed.len()
        );
    }
}
