//! The extension module `thunder._C` (feature `python`).

use crate::graph::{self, Arg, Graph, Input, Node};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use thunder_executors::{ExecutionPlan, Executor, RtValue};
use thunder_ir::{DType, Device, NumberType, Trace};
use thunder_transforms::ForwardBackward;

create_exception!(
    thunder,
    ThunderError,
    PyRuntimeError,
    "An error of thunder-rs."
);
create_exception!(
    thunder,
    UnsupportedError,
    ThunderError,
    "A graph thunder cannot compile yet (it runs eagerly instead)."
);

fn err(e: impl std::fmt::Display) -> PyErr {
    ThunderError::new_err(e.to_string())
}

/// Runs `f`, turning a Rust panic (a bug of thunder's, or of a library it calls) into a
/// `ThunderError` that names `what`: PyO3 would raise `PanicException`, a `BaseException`
/// that `except Exception` does not catch.
fn no_panic<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        Err(ThunderError::new_err(format!(
            "{what}: internal error (a panic in thunder-rs: {msg}); please report it"
        )))
    })
}

fn dtype(s: &str) -> PyResult<DType> {
    Ok(match s {
        "torch.float32" => DType::F32,
        "torch.float64" => DType::F64,
        "torch.float16" => DType::F16,
        "torch.bfloat16" => DType::BF16,
        "torch.int64" => DType::I64,
        "torch.int32" => DType::I32,
        "torch.int16" => DType::I16,
        "torch.int8" => DType::I8,
        "torch.uint8" => DType::U8,
        "torch.bool" => DType::Bool,
        _ => return Err(UnsupportedError::new_err(format!("dtype {s}"))),
    })
}

fn device(s: &str) -> PyResult<Device> {
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    match s.strip_prefix("cuda:").map(str::parse::<u32>) {
        Some(Ok(i)) => Ok(Device::Cuda(i as _)),
        _ => Err(UnsupportedError::new_err(format!("device {s}"))),
    }
}

/// `(kind, ...)` tuples from `thunder/_fx.py` into a graph input.
fn input(t: &Bound<'_, PyTuple>) -> PyResult<Input> {
    let kind: String = t.get_item(0)?.extract()?;
    Ok(match kind.as_str() {
        "tensor" => Input::Tensor {
            dtype: dtype(&t.get_item(1)?.extract::<String>()?)?,
            shape: t.get_item(2)?.extract()?,
            device: device(&t.get_item(3)?.extract::<String>()?)?,
            requires_grad: t.get_item(4)?.extract()?,
        },
        "int" => Input::Number(NumberType::Int),
        "float" => Input::Number(NumberType::Float),
        "bool" => Input::Number(NumberType::Bool),
        _ => {
            return Err(UnsupportedError::new_err(format!(
                "an input of kind {kind}"
            )))
        }
    })
}

fn arg(t: &Bound<'_, PyTuple>) -> PyResult<Arg> {
    let kind: String = t.get_item(0)?.extract()?;
    Ok(match kind.as_str() {
        "ref" => Arg::Ref(t.get_item(1)?.extract()?),
        "int" => Arg::Int(t.get_item(1)?.extract()?),
        "float" => Arg::Float(t.get_item(1)?.extract()?),
        "bool" => Arg::Bool(t.get_item(1)?.extract()?),
        "none" => Arg::None,
        "str" => Arg::Str(t.get_item(1)?.extract()?),
        "list" => Arg::List(
            t.get_item(1)?
                .extract::<Vec<Bound<'_, PyTuple>>>()?
                .iter()
                .map(arg)
                .collect::<PyResult<_>>()?,
        ),
        _ => {
            return Err(UnsupportedError::new_err(format!(
                "an argument of kind {kind}"
            )))
        }
    })
}

/// A compiled graph: call it with the graph's inputs.
#[pyclass(module = "thunder._C", frozen)]
struct CompiledGraph {
    /// The trace's name (errors say which graph failed).
    name: String,
    /// The function (without grad), or its forward (returning the outputs, then what the
    /// backward needs).
    plan: Runner,
    /// With grad: the backward (saved values and cotangents in, one gradient per `wrt` out).
    backward: Option<Runner>,
    /// Data parallel: the backward without the gradient all-reduces (`no_sync` micro-steps).
    backward_local: Option<ExecutionPlan>,
    /// Backward runs: `[with the all-reduces, without]`.
    backward_runs: [AtomicU64; 2],
    /// FSDP: the original inputs the plans take (in order), then the buckets whose shards
    /// follow them.
    fsdp_inputs: Option<(Vec<usize>, Vec<usize>)>,
    /// Inputs the gradients are for (indices into the graph's inputs).
    wrt: Vec<usize>,
    /// Per cotangent the backward takes, the outputs it belongs to (one value returned at
    /// several positions has one cotangent, the sum of theirs).
    ct_outputs: Vec<Vec<usize>>,
    /// How many outputs the function has.
    n_out: usize,
    traces: Vec<(String, String)>,
    backward_traces: Vec<(String, String)>,
    /// Per output of the function: `(torch dtype, shape)`, or None for a number.
    output_metas: Vec<Option<(String, Vec<usize>)>>,
    /// Seconds per compile stage.
    compile_seconds: Vec<(&'static str, f64)>,
    calls: AtomicU64,
}

/// A plan, run directly or replayed from a CUDA graph (`thunder.jit(..., cuda_graphs=True)`).
enum Runner {
    Plain(ExecutionPlan),
    Graphed(std::sync::Mutex<thunder_executors::GraphedPlan>),
}

impl Runner {
    /// `fixed`: with CUDA graphs, the inputs that are the same tensors at every call
    /// (parameters); None: no CUDA graphs.
    fn new(plan: ExecutionPlan, fixed: Option<&[usize]>) -> Self {
        match fixed {
            None => Runner::Plain(plan),
            Some(f) => Runner::Graphed(std::sync::Mutex::new(
                thunder_executors::GraphedPlan::new(plan).with_fixed_inputs(f),
            )),
        }
    }

    /// Runs it; the outputs of a replay are copied (the graph rewrites its own at the next
    /// replay). Also says whether this run was a replay.
    fn run(&self, ins: Vec<RtValue>) -> thunder_executors::Result<(Vec<RtValue>, bool)> {
        match self {
            Runner::Plain(p) => Ok((p.run_owned(ins)?, false)),
            Runner::Graphed(m) => {
                let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
                let before = g.replays();
                let outs = g.run_values(ins)?;
                Ok((outs, g.replays() > before))
            }
        }
    }

    /// [`run`](Self::run) for callers that hand every output to Python: a replay's outputs
    /// are copied.
    fn run_fresh(&self, ins: Vec<RtValue>) -> thunder_executors::Result<Vec<RtValue>> {
        let (outs, replayed) = self.run(ins)?;
        if replayed {
            copied(outs)
        } else {
            Ok(outs)
        }
    }

    fn replays(&self) -> u64 {
        match self {
            Runner::Plain(_) => 0,
            Runner::Graphed(m) => m.lock().unwrap_or_else(|e| e.into_inner()).replays(),
        }
    }

    /// With CUDA graphs: `(captured, why not)`.
    fn status(&self) -> Option<(bool, Option<String>)> {
        match self {
            Runner::Plain(_) => None,
            Runner::Graphed(m) => {
                let g = m.lock().unwrap_or_else(|e| e.into_inner());
                Some((g.is_captured(), g.fallback_reason().map(str::to_string)))
            }
        }
    }
}

/// Copies of `outs`' tensors (the outputs of a replay, which the next replay rewrites).
fn copied(outs: Vec<RtValue>) -> thunder_executors::Result<Vec<RtValue>> {
    outs.into_iter()
        .map(|v| match v {
            RtValue::Tensor(t) => Ok(RtValue::Tensor(thunder_executors::graphs::copy_of(&t)?)),
            other => Ok(other),
        })
        .collect()
}

/// Python arguments into plan inputs (tensors without copies).
fn rt_values(args: &Bound<'_, PyTuple>) -> PyResult<Vec<RtValue>> {
    let mut ins: Vec<RtValue> = Vec::with_capacity(args.len());
    for a in args.iter() {
        ins.push(rt_value(&a)?);
    }
    Ok(ins)
}

fn rt_value(a: &Bound<'_, PyAny>) -> PyResult<RtValue> {
    Ok(if let Ok(t) = a.extract::<pyo3_tch::PyTensor>() {
        RtValue::Tensor(plain_tensor(t.0)?)
    } else if let Ok(b) = a.extract::<bool>() {
        RtValue::Bool(b)
    } else if let Ok(i) = a.extract::<i64>() {
        RtValue::Int(i)
    } else if let Ok(f) = a.extract::<f64>() {
        RtValue::Float(f)
    } else {
        return Err(ThunderError::new_err(format!(
            "an argument of type {} (thunder takes tensors and numbers)",
            a.get_type()
        )));
    })
}

/// `t` if it is a tensor thunder's kernels may read: defined, dense (strided) and on the CPU
/// or a CUDA device. The plan then checks its dtype, shape and device against the trace; a
/// sparse or MKL-DNN tensor of the right shape would pass those checks, and a kernel that reads
/// its memory directly would read something else.
fn plain_tensor(t: tch::Tensor) -> PyResult<tch::Tensor> {
    let why = if !t.defined() {
        "an undefined tensor"
    } else if t.is_sparse() {
        "a sparse tensor"
    } else if t.is_mkldnn() {
        "an MKL-DNN tensor"
    } else if !matches!(t.device(), tch::Device::Cpu | tch::Device::Cuda(_)) {
        "a tensor on a device other than the CPU or CUDA"
    } else if t.f_kind().is_err() {
        "a tensor of a dtype thunder does not know"
    } else {
        return Ok(t);
    };
    Err(ThunderError::new_err(format!(
        "{why}: thunder runs dense (strided) CPU and CUDA tensors"
    )))
}

/// Plan outputs into Python objects.
fn py_values(py: Python<'_>, outs: Vec<RtValue>) -> PyResult<Vec<PyObject>> {
    let mut objs: Vec<PyObject> = Vec::with_capacity(outs.len());
    for o in outs {
        objs.push(match o {
            RtValue::Tensor(t) => {
                let ptr = t.pyobject_wrap().map_err(err)?;
                // SAFETY: a new reference to a torch.Tensor from libtorch_python.
                unsafe { PyObject::from_owned_ptr(py, ptr as *mut pyo3::ffi::PyObject) }
            }
            RtValue::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
            RtValue::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
            RtValue::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        });
    }
    Ok(objs)
}

impl CompiledGraph {
    /// A run-time error as a Python exception naming the graph (its traces show the line).
    fn failed(&self, part: &str, e: impl std::fmt::Display) -> PyErr {
        ThunderError::new_err(format!("{}{part}: {e}", self.name))
    }
}

#[pymethods]
impl CompiledGraph {
    #[pyo3(signature = (*args))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        no_panic(&self.name, || {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let ins = rt_values(args).map_err(|e| self.failed("", e))?;
            let plan = &self.plan;
            let outs = py
                .allow_threads(move || plan.run_fresh(ins))
                .map_err(|e| self.failed("", e))?;
            PyTuple::new(py, py_values(py, outs)?)
        })
    }

    /// With grad: runs the forward; returns `(outputs, saved)`.
    #[pyo3(signature = (*args))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyTuple>)> {
        no_panic(&self.name, || {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let ins = rt_values(args).map_err(|e| self.failed(" (forward)", e))?;
            let plan = &self.plan;
            let n_out = self.n_out;
            let (outs, saved) = py
                .allow_threads(move || {
                    let (mut outs, replayed) = plan.run(ins)?;
                    let saved = outs.split_off(n_out.min(outs.len()));
                    // The saved values stay the graph's own: the backward must come before the
                    // next replay (`forward_replays` lets the caller check).
                    Ok::<_, thunder_executors::Error>((
                        if replayed { copied(outs)? } else { outs },
                        saved,
                    ))
                })
                .map_err(|e| self.failed(" (forward)", e))?;
            Ok((
                PyTuple::new(py, py_values(py, outs)?)?,
                PyTuple::new(py, py_values(py, saved)?)?,
            ))
        })
    }

    /// With grad: runs the backward on the saved values and the cotangents (of the outputs
    /// `ct_outputs` names); returns one gradient per `wrt` input. Data parallel, `sync=False`
    /// runs it without the gradient all-reduces (a `no_sync` micro-step).
    #[pyo3(signature = (saved, cotangents, sync=true))]
    fn backward<'py>(
        &self,
        py: Python<'py>,
        saved: Vec<Bound<'py, PyAny>>,
        cotangents: Vec<Bound<'py, PyAny>>,
        sync: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        no_panic(&self.name, || {
            let local = !sync && self.backward_local.is_some();
            let backward = self.backward.as_ref().ok_or_else(|| {
                self.failed(" (backward)", "compiled without grad: it has no backward")
            })?;
            // Counted apart from the saved values: the plan checks only their sum.
            if cotangents.len() != self.ct_outputs.len() {
                return Err(self.failed(
                    " (backward)",
                    format!(
                        "takes {} cotangents (one per floating output), given {}",
                        self.ct_outputs.len(),
                        cotangents.len()
                    ),
                ));
            }
            let mut ins = Vec::with_capacity(saved.len() + cotangents.len());
            for a in saved.iter().chain(&cotangents) {
                ins.push(rt_value(a).map_err(|e| self.failed(" (backward)", e))?);
            }
            self.backward_runs[usize::from(local)].fetch_add(1, Ordering::Relaxed);
            let local_plan = self.backward_local.as_ref().filter(|_| local);
            let outs = py
                .allow_threads(move || match local_plan {
                    Some(p) => p.run_owned(ins),
                    None => backward.run_fresh(ins),
                })
                .map_err(|e| self.failed(" (backward)", e))?;
            PyTuple::new(py, py_values(py, outs)?)
        })
    }

    /// With CUDA graphs: how many calls replayed the forward (a backward must run before the
    /// next replay: its saved values are the graph's own).
    fn forward_replays(&self) -> u64 {
        self.plan.replays()
    }

    /// With CUDA graphs: per plan (`"forward"` or `"function"`, `"backward"`), whether it is
    /// captured and, if it runs uncaptured, why. Empty without CUDA graphs.
    fn cuda_graphs(&self) -> Vec<(&'static str, bool, Option<String>)> {
        let first = if self.backward.is_some() {
            "forward"
        } else {
            "function"
        };
        let mut out = Vec::new();
        if let Some((c, why)) = self.plan.status() {
            out.push((first, c, why));
        }
        if let Some((c, why)) = self.backward.as_ref().and_then(Runner::status) {
            out.push(("backward", c, why));
        }
        out
    }

    /// How many backward runs averaged the gradients over the ranks, and how many did not
    /// (`no_sync`).
    fn backward_runs(&self) -> (u64, u64) {
        (
            self.backward_runs[0].load(Ordering::Relaxed),
            self.backward_runs[1].load(Ordering::Relaxed),
        )
    }

    /// FSDP: `(inputs, buckets)`: the plans take the graph's inputs `inputs` (in that order),
    /// then the shards of `buckets`. None without FSDP.
    fn fsdp_inputs(&self) -> Option<(Vec<usize>, Vec<usize>)> {
        self.fsdp_inputs.clone()
    }

    /// The inputs the gradients are for.
    fn wrt(&self) -> Vec<usize> {
        self.wrt.clone()
    }

    /// Per cotangent the backward takes, the indices of its outputs: the cotangent is the sum
    /// of theirs (one value returned at several positions).
    fn ct_outputs(&self) -> Vec<Vec<usize>> {
        self.ct_outputs.clone()
    }

    /// `[(stage, python source)]` of the backward (empty without grad).
    fn backward_traces(&self) -> Vec<(String, String)> {
        self.backward_traces.clone()
    }

    /// `[(stage, python source)]`: the trace as captured, then as the plan runs it.
    fn traces(&self) -> Vec<(String, String)> {
        self.traces.clone()
    }

    /// `[(stage, seconds)]` its compilation took: `trace` (the graph into a thunder trace),
    /// `grad` (forward and backward), `plan` (executors, fusion, kernel code generation).
    fn compile_seconds(&self) -> Vec<(&'static str, f64)> {
        self.compile_seconds.clone()
    }

    /// Per output: `(dtype, shape)` as thunder computed them (`"torch.float32"`, `[2, 3]`), or
    /// None for a number. The Python side checks them against PyTorch's own.
    fn output_metas(&self) -> Vec<Option<(String, Vec<usize>)>> {
        self.output_metas.clone()
    }

    /// How many times it ran.
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// `compile`'s `fsdp`: the layout, `(wrt position, layout parameter)` pairs, prefetch.
type FsdpArg<'py> = (PyRef<'py, FsdpLayout>, Vec<(usize, usize)>, usize);

/// Compiles a graph (`inputs`, `nodes`, `outputs` as `thunder/_fx.py` encodes them) for the
/// executors named. Raises `UnsupportedError` for what thunder cannot compile yet.
///
/// `ddp`: `(world_size, bucket_bytes, reduce)`: the backward averages the gradients `reduce`
/// (positions in `wrt`) over the ranks in buckets; `comm` runs the collectives (without it, only
/// a world of one rank runs).
///
/// `cuda_graphs`: replay the plans from CUDA graphs after their first run; the list names the
/// inputs that are the same tensors at every call (parameters), read in place.
///
/// `fsdp`: `(layout, params, prefetch)`: ZeRO-3 along `layout`; `params` pairs positions in
/// `wrt` with the layout's parameters. The plans then take the inputs `fsdp_inputs()` names and
/// the shards of its buckets, and the backward returns their gradients (`wrt()` says where).
#[pyfunction]
#[pyo3(signature = (name, inputs, nodes, outputs, executors, wrt=Vec::new(), ddp=None, comm=None, fsdp=None, cuda_graphs=None))]
#[allow(clippy::too_many_arguments)]
fn compile(
    name: &str,
    inputs: Vec<Bound<'_, PyTuple>>,
    nodes: Vec<NodeArg<'_>>,
    outputs: Vec<usize>,
    executors: Vec<String>,
    wrt: Vec<usize>,
    ddp: Option<(usize, usize, Vec<usize>)>,
    comm: Option<PyRef<'_, Communicator>>,
    fsdp: Option<FsdpArg<'_>>,
    cuda_graphs: Option<Vec<usize>>,
) -> PyResult<CompiledGraph> {
    no_panic(name, move || {
        let g = decode_graph(&inputs, nodes, outputs)?;
        let t0 = Instant::now();
        let trace = trace_graph(&g, name)?;
        let execs = thunder_executors::executors_by_name(&executors)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let refs = executor_refs(comm.as_deref(), &execs);
        let mut info = CompileInfo::new(name, &trace);
        info.seconds.push(("trace", t0.elapsed().as_secs_f64()));
        if wrt.is_empty() {
            return compile_without_grad(info, &trace, &refs, cuda_graphs.as_deref());
        }
        let wrt_values = wrt_values(&trace, &wrt)?;
        let t = Instant::now();
        let grad = grad_traces(&trace, &wrt_values, wrt, fsdp.as_ref(), ddp)?;
        info.seconds.push(("grad", t.elapsed().as_secs_f64()));
        compile_with_grad(info, &trace, grad, &refs, cuda_graphs.as_deref())
    })
}

/// A node as `thunder/_fx.py` encodes it: the op's name, its arguments, its origin in the
/// user's code, and the dtype of the `torch.autocast` region it is in (or None).
type NodeArg<'py> = (String, Vec<Bound<'py, PyTuple>>, String, Option<String>);

/// Decodes `compile`'s `inputs`, `nodes` and `outputs` (as `thunder/_fx.py` encodes them) into
/// a [`Graph`]: the inputs first, then the nodes' arguments in order, the first bad one raising.
fn decode_graph(
    inputs: &[Bound<'_, PyTuple>],
    nodes: Vec<NodeArg<'_>>,
    outputs: Vec<usize>,
) -> PyResult<Graph> {
    let mut g = Graph {
        inputs: inputs.iter().map(input).collect::<PyResult<_>>()?,
        nodes: Vec::with_capacity(nodes.len()),
        outputs,
    };
    for (op, args, origin, autocast) in nodes {
        let autocast = match autocast.as_deref() {
            None => None,
            Some(d @ ("torch.bfloat16" | "torch.float16")) => Some(dtype(d)?),
            Some(d) => {
                return Err(PyValueError::new_err(format!(
                    "{origin}: autocast runs in bfloat16 or float16, not {d}"
                )))
            }
        };
        g.nodes.push(Node {
            op,
            args: args.iter().map(arg).collect::<PyResult<_>>()?,
            origin,
            autocast,
        });
    }
    Ok(g)
}

/// Translates a decoded graph into a trace named `name`. What thunder cannot compile yet
/// raises `UnsupportedError` (the graph then runs eagerly); any other failure `ThunderError`.
fn trace_graph(g: &Graph, name: &str) -> PyResult<Trace> {
    graph::to_trace(g, name).map_err(|e| match e {
        graph::GraphError::Unsupported { .. } => UnsupportedError::new_err(e.to_string()),
        _ => err(e),
    })
}

/// The executors a plan may use, in priority order: the communicator's (it claims the
/// collectives) first when there is one, then those named.
fn executor_refs<'a>(
    comm: Option<&'a Communicator>,
    execs: &'a [Box<dyn Executor>],
) -> Vec<&'a dyn Executor> {
    let mut refs: Vec<&dyn Executor> = Vec::with_capacity(execs.len() + 1);
    if let Some(c) = comm {
        refs.push(c.executor());
    }
    refs.extend(execs.iter().map(|e| e.as_ref()));
    refs
}

/// What a compiled graph reports whether or not it has a grad, gathered while it compiles.
struct CompileInfo<'a> {
    /// The trace's name.
    name: &'a str,
    /// How many outputs the function has.
    n_out: usize,
    /// Per output of the function: `(torch dtype, shape)`, or None for a number.
    output_metas: Vec<Option<(String, Vec<usize>)>>,
    /// Seconds per compile stage so far.
    seconds: Vec<(&'static str, f64)>,
}

impl<'a> CompileInfo<'a> {
    /// The outputs' count and metadata of `trace`; no stage timed yet.
    fn new(name: &'a str, trace: &Trace) -> Self {
        let output_metas = trace
            .outputs
            .iter()
            .map(|&o| {
                trace
                    .tensor(o)
                    .map(|t| (format!("torch.{}", t.dtype.torch_name()), t.shape.sizes()))
            })
            .collect();
        CompileInfo {
            name,
            n_out: trace.outputs.len(),
            output_metas,
            seconds: Vec::new(),
        }
    }
}

/// Without grad: one plan for the whole trace. `cuda_graphs`: the fixed inputs when the plan
/// is replayed from a CUDA graph.
fn compile_without_grad(
    mut info: CompileInfo<'_>,
    trace: &Trace,
    refs: &[&dyn Executor],
    cuda_graphs: Option<&[usize]>,
) -> PyResult<CompiledGraph> {
    let t = Instant::now();
    let plan = ExecutionPlan::compile(trace, refs).map_err(err)?;
    info.seconds.push(("plan", t.elapsed().as_secs_f64()));
    let traces = vec![
        ("captured".to_string(), trace.to_python()),
        ("executed".to_string(), plan.claimed().to_python()),
    ];
    Ok(CompiledGraph {
        name: info.name.to_string(),
        plan: Runner::new(plan, cuda_graphs),
        backward: None,
        backward_local: None,
        backward_runs: Default::default(),
        fsdp_inputs: None,
        wrt: Vec::new(),
        ct_outputs: Vec::new(),
        n_out: info.n_out,
        traces,
        backward_traces: Vec::new(),
        compile_seconds: info.seconds,
        output_metas: info.output_metas,
        calls: AtomicU64::new(0),
    })
}

/// The trace's inputs at the positions `wrt` names; a position past them raises.
fn wrt_values(trace: &Trace, wrt: &[usize]) -> PyResult<Vec<thunder_ir::Value>> {
    wrt.iter()
        .map(|&i| {
            trace
                .inputs
                .get(i)
                .copied()
                .ok_or_else(|| ThunderError::new_err(format!("wrt input {i} does not exist")))
        })
        .collect()
}

/// The forward and backward traces of a graph with grad, after the distributed transforms,
/// and how the Python side feeds and reads them.
struct GradTraces {
    /// The forward and the backward (with the DDP all-reduces, if any).
    fb: ForwardBackward,
    /// Positions among the plans' inputs of the gradients the backward returns.
    wrt: Vec<usize>,
    /// Per cotangent the backward takes, the outputs it belongs to.
    ct_outputs: Vec<Vec<usize>>,
    /// FSDP: the original inputs the plans take, then the buckets whose shards follow them.
    fsdp_inputs: Option<(Vec<usize>, Vec<usize>)>,
    /// DDP: the backward without the gradient all-reduces.
    backward_local: Option<Trace>,
}

/// Splits `trace` into a forward and a backward for the gradients of `wrt_values` (the inputs
/// at the positions `wrt`), then shards it with FSDP and/or adds the DDP all-reduces. An op
/// without a grad rule raises `UnsupportedError`; a failing FSDP or DDP transform
/// `ThunderError`.
fn grad_traces(
    trace: &Trace,
    wrt_values: &[thunder_ir::Value],
    mut wrt: Vec<usize>,
    fsdp: Option<&FsdpArg<'_>>,
    ddp: Option<(usize, usize, Vec<usize>)>,
) -> PyResult<GradTraces> {
    let mut fb = thunder_transforms::forward_backward(trace, wrt_values).map_err(|e| {
        // An op without a grad rule: the graph runs eagerly, with PyTorch's autograd.
        UnsupportedError::new_err(format!("the gradient: {e}"))
    })?;
    let ct_outputs = cotangent_outputs(trace);
    let fsdp_inputs = match fsdp {
        Some((layout, params, prefetch)) => Some(shard_fsdp(
            &mut fb,
            &mut wrt,
            &layout.inner,
            params,
            *prefetch,
        )?),
        None => None,
    };
    let backward_local = match ddp {
        Some((world, bucket_bytes, reduce)) => {
            Some(reduce_ddp(&mut fb, world, bucket_bytes, &reduce)?)
        }
        None => None,
    };
    Ok(GradTraces {
        fb,
        wrt,
        ct_outputs,
        fsdp_inputs,
        backward_local,
    })
}

/// Per cotangent the backward takes, the positions of the outputs it belongs to.
///
/// One cotangent per distinct floating tensor output (see `thunder_transforms::grad`); an
/// output returned at several positions (a split graph hands one value to several pieces)
/// takes the sum of their cotangents: each position is differentiable.
fn cotangent_outputs(trace: &Trace) -> Vec<Vec<usize>> {
    let mut ct_outputs: Vec<Vec<usize>> = Vec::new();
    let mut seen: Vec<thunder_ir::Value> = Vec::new();
    for (i, &o) in trace.outputs.iter().enumerate() {
        if !trace.tensor(o).is_some_and(|t| t.dtype.is_float()) {
            continue;
        }
        match seen.iter().position(|&s| s == o) {
            Some(k) => ct_outputs[k].push(i),
            None => {
                seen.push(o);
                ct_outputs.push(vec![i]);
            }
        }
    }
    ct_outputs
}

/// FSDP (ZeRO-3 along `layout`, `params` pairing positions in `wrt` with its parameters):
/// rewrites `fb` to take the kept inputs and the bucket shards, and `wrt` to the positions of
/// the plans' gradients. Returns the kept inputs and the buckets (`fsdp_inputs()`).
fn shard_fsdp(
    fb: &mut ForwardBackward,
    wrt: &mut Vec<usize>,
    layout: &thunder_distributed::Layout,
    params: &[(usize, usize)],
    prefetch: usize,
) -> PyResult<(Vec<usize>, Vec<usize>)> {
    let opts = thunder_distributed::FsdpOptions {
        prefetch,
        ..thunder_distributed::FsdpOptions::new(layout.world_size, thunder_distributed::Zero::Three)
    };
    let piece = thunder_distributed::fsdp_with_layout(
        &fb.forward,
        &fb.backward,
        fb.num_saved,
        wrt,
        params,
        layout,
        &opts,
    )
    .map_err(|e| ThunderError::new_err(format!("FSDP: {e}")))?;
    // The plans' gradients: of the inputs that are not parameters (at their new places),
    // then of the bucket shards (after those inputs).
    let mut new_wrt = Vec::with_capacity(piece.grads.len() + piece.buckets.len());
    for &j in &piece.grads {
        let at = piece
            .inputs
            .iter()
            .position(|&i| i == wrt[j])
            .ok_or_else(|| ThunderError::new_err(format!("FSDP: input {} is not kept", wrt[j])))?;
        new_wrt.push(at);
    }
    new_wrt.extend((0..piece.buckets.len()).map(|t| piece.inputs.len() + t));
    *wrt = new_wrt;
    fb.forward = piece.forward;
    fb.backward = piece.backward;
    fb.num_saved = piece.num_saved;
    Ok((piece.inputs, piece.buckets))
}

/// DDP: makes `fb`'s backward average the gradients `reduce` (positions in `wrt`) over
/// `world` ranks in buckets of `bucket_bytes`. Returns the backward as it was, without the
/// all-reduces (for `no_sync` micro-steps).
fn reduce_ddp(
    fb: &mut ForwardBackward,
    world: usize,
    bucket_bytes: usize,
    reduce: &[usize],
) -> PyResult<Trace> {
    let local = fb.backward.clone();
    let opts = thunder_distributed::DdpOptions {
        world_size: world,
        bucket_bytes,
    };
    fb.backward = thunder_distributed::ddp_backward_for(&fb.backward, &opts, reduce)
        .map_err(|e| ThunderError::new_err(format!("DDP: {e}")))?;
    Ok(local)
}

/// With grad: plans for the forward, the backward and (DDP) the backward without the
/// all-reduces. `cuda_graphs`: the fixed inputs when the plans are replayed from CUDA graphs.
fn compile_with_grad(
    mut info: CompileInfo<'_>,
    trace: &Trace,
    grad: GradTraces,
    refs: &[&dyn Executor],
    cuda_graphs: Option<&[usize]>,
) -> PyResult<CompiledGraph> {
    let GradTraces {
        fb,
        wrt,
        ct_outputs,
        fsdp_inputs,
        backward_local,
    } = grad;
    let t = Instant::now();
    let plan = ExecutionPlan::compile(&fb.forward, refs).map_err(err)?;
    let backward = ExecutionPlan::compile(&fb.backward, refs).map_err(err)?;
    let backward_local = backward_local
        .map(|b| ExecutionPlan::compile(&b, refs))
        .transpose()
        .map_err(err)?;
    info.seconds.push(("plan", t.elapsed().as_secs_f64()));
    let traces = vec![
        ("captured".to_string(), trace.to_python()),
        ("forward".to_string(), fb.forward.to_python()),
        ("executed".to_string(), plan.claimed().to_python()),
    ];
    let backward_traces = vec![
        ("backward".to_string(), fb.backward.to_python()),
        ("executed".to_string(), backward.claimed().to_python()),
    ];
    // With FSDP the plans' inputs are reordered: the fixed positions no longer apply (and the
    // collectives make the plans uncapturable anyway).
    let fixed = cuda_graphs.map(|f| if fsdp_inputs.is_some() { &[][..] } else { f });
    Ok(CompiledGraph {
        name: info.name.to_string(),
        plan: Runner::new(plan, fixed),
        backward: Some(Runner::new(backward, cuda_graphs.map(|_| &[][..]))),
        backward_local,
        backward_runs: Default::default(),
        fsdp_inputs,
        wrt,
        ct_outputs,
        n_out: info.n_out,
        traces,
        backward_traces,
        compile_seconds: info.seconds,
        output_metas: info.output_metas,
        calls: AtomicU64::new(0),
    })
}

/// The most ranks an FSDP layout may have.
const MAX_WORLD_SIZE: usize = 1 << 20;

/// How a module's parameters are sharded for `thunder.distributed.fsdp`: buckets of
/// parameters laid end to end, each split into `world_size` equal flat shards.
#[pyclass(module = "thunder._C", frozen)]
struct FsdpLayout {
    inner: thunder_distributed::Layout,
}

#[pymethods]
impl FsdpLayout {
    /// `params`: `(name, shape, torch dtype, device)` in the order the buckets take them;
    /// buckets hold at most `bucket_bytes` (one parameter larger than that gets its own).
    #[new]
    fn new(
        world_size: usize,
        params: Vec<(String, Vec<usize>, String, String)>,
        bucket_bytes: usize,
    ) -> PyResult<Self> {
        no_panic("thunder._C.FsdpLayout", || {
            // (The bound keeps `shard numel * world size` far from overflowing.)
            if !(1..=MAX_WORLD_SIZE).contains(&world_size) {
                return Err(PyValueError::new_err(format!(
                    "world_size must be between 1 and {MAX_WORLD_SIZE}, not {world_size}"
                )));
            }
            // The layout adds up numels in usize; a shape whose numel (or whose bytes) overflows
            // is no parameter PyTorch could hold.
            let mut total: usize = 0;
            for (name, shape, _, _) in &params {
                let bytes = shape
                    .iter()
                    .try_fold(8usize, |n, &d| n.checked_mul(d))
                    .and_then(|b| total.checked_add(b));
                total = bytes.ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "parameter {name}: the shape {shape:?} is too large to lay out"
                    ))
                })?;
            }
            let specs = params
                .into_iter()
                .map(|(name, shape, dt, dev)| {
                    Ok(thunder_distributed::ParamSpec {
                        name,
                        shape,
                        dtype: dtype(&dt)?,
                        device: device(&dev)?,
                    })
                })
                .collect::<PyResult<Vec<_>>>()?;
            let order: Vec<usize> = (0..specs.len()).collect();
            Ok(FsdpLayout {
                inner: thunder_distributed::Layout::new(
                    world_size,
                    specs,
                    &order,
                    bucket_bytes.max(1),
                ),
            })
        })
    }

    /// Per bucket: `(parameter indices, offsets, numel, shard_numel)`.
    fn buckets(&self) -> Vec<(Vec<usize>, Vec<usize>, usize, usize)> {
        self.inner
            .buckets
            .iter()
            .map(|b| (b.params.clone(), b.offsets.clone(), b.numel, b.shard_numel))
            .collect()
    }

    /// The number of ranks.
    #[getter]
    fn world_size(&self) -> usize {
        self.inner.world_size
    }
}

/// A new NCCL unique id (rank 0 makes it; `thunder.distributed` shares it through the
/// torch.distributed store).
#[pyfunction]
fn nccl_unique_id<'py>(py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    no_panic("thunder._C.nccl_unique_id", || {
        let id = thunder_distributed::nccl::unique_id().map_err(err)?;
        Ok(pyo3::types::PyBytes::new(py, &id.internal))
    })
}

/// A torch.distributed process group as a [`thunder_distributed::loopback::Exchange`]:
/// `thunder.distributed._exchange` all-gathers a tensor over it (gloo on the CPU).
struct ProcessGroupExchange {
    world_size: usize,
    /// The `torch.distributed.ProcessGroup` (its timeout bounds every collective).
    group: Py<PyAny>,
}

impl std::fmt::Debug for ProcessGroupExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroupExchange({} ranks)", self.world_size)
    }
}

impl thunder_distributed::loopback::Exchange for ProcessGroupExchange {
    fn world_size(&self) -> usize {
        self.world_size
    }

    fn exchange(
        &self,
        _rank: usize,
        t: &tch::Tensor,
        _what: &str,
    ) -> Result<Vec<tch::Tensor>, thunder_executors::KernelError> {
        Python::with_gil(|py| -> PyResult<Vec<tch::Tensor>> {
            let all = py
                .import("thunder.distributed")?
                .getattr("_exchange")?
                .call1((pyo3_tch::PyTensor(t.shallow_clone()), self.group.bind(py)))?;
            let all: Vec<pyo3_tch::PyTensor> = all.extract()?;
            Ok(all.into_iter().map(|t| t.0).collect())
        })
        .map_err(|e| {
            // The plan's error names the statement (`what`) and this executor already.
            thunder_executors::KernelError(e.to_string())
        })
    }
}

/// What runs a rank's collectives: NCCL, or torch.distributed's process group.
enum CommExecutor {
    Nccl(thunder_distributed::nccl_executor::NcclExecutor),
    ProcessGroup(thunder_distributed::loopback::ExchangeExecutor),
}

/// This rank's communicator and the executor that runs collectives on it.
#[pyclass(module = "thunder._C", frozen)]
struct Communicator {
    exec: CommExecutor,
}

impl Communicator {
    fn executor(&self) -> &dyn Executor {
        match &self.exec {
            CommExecutor::Nccl(e) => e,
            CommExecutor::ProcessGroup(e) => e,
        }
    }
}

#[pymethods]
impl Communicator {
    /// Joins the NCCL communicator of `unique_id` (128 bytes from rank 0) as `rank` of
    /// `world_size` on CUDA device `device`; fails when the others do not join within
    /// `timeout_s`.
    #[new]
    fn new(
        py: Python<'_>,
        unique_id: &[u8],
        rank: usize,
        world_size: usize,
        device: i32,
        timeout_s: f64,
    ) -> PyResult<Self> {
        no_panic("thunder._C.Communicator", || {
            let mut id = thunder_distributed::nccl::UniqueId { internal: [0; 128] };
            if unique_id.len() != 128 {
                return Err(PyValueError::new_err(format!(
                    "an NCCL unique id has 128 bytes, not {}",
                    unique_id.len()
                )));
            }
            id.internal.copy_from_slice(unique_id);
            let timeout = thunder_distributed::timeout::from_secs_f64("timeout_s", timeout_s)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            let comm = py
                .allow_threads(|| {
                    thunder_distributed::nccl::Communicator::new(
                        &id, rank, world_size, device, timeout,
                    )
                })
                .map_err(err)?;
            let exec =
                thunder_distributed::nccl_executor::NcclExecutor::new(std::sync::Arc::new(comm))
                    .map_err(err)?;
            Ok(Communicator {
                exec: CommExecutor::Nccl(exec),
            })
        })
    }

    /// Collectives through the torch.distributed process group `group` (all-gathers, for gloo
    /// on the CPU; its timeout bounds each): `rank` of `world_size`.
    #[staticmethod]
    fn process_group(rank: usize, world_size: usize, group: Py<PyAny>) -> PyResult<Self> {
        if rank >= world_size {
            return Err(PyValueError::new_err(format!(
                "rank {rank} is not below the world size {world_size}"
            )));
        }
        let group = std::sync::Arc::new(ProcessGroupExchange { world_size, group });
        Ok(Communicator {
            exec: CommExecutor::ProcessGroup(thunder_distributed::loopback::ExchangeExecutor::new(
                "torch.distributed",
                group,
                rank,
            )),
        })
    }

    fn __repr__(&self) -> String {
        match &self.exec {
            CommExecutor::Nccl(e) => format!("{:?}", e.communicator()),
            CommExecutor::ProcessGroup(e) => format!("Communicator({e:?})"),
        }
    }
}

/// The executors `thunder.jit(executors=...)` accepts, in the default order of priority.
#[pyfunction]
fn available_executors() -> Vec<&'static str> {
    thunder_executors::EXECUTOR_NAMES.to_vec()
}

/// The ops thunder compiles (the rest runs eagerly): the torch-level ops whose op-table row
/// names PyTorch callables.
#[pyfunction]
fn supported_ops() -> Vec<&'static str> {
    graph::translated_ops().map(|op| op.name()).collect()
}

/// One op of [`op_table`]: name, PyTorch paths, operands and attributes as `(name, kind)`.
type OpRow = (
    &'static str,
    Vec<&'static str>,
    Vec<(&'static str, String)>,
    Vec<(&'static str, String)>,
);

/// The op table as the Python front end reads it: for each torch-level op with PyTorch names,
/// `(name, pytorch paths, operands, attributes)`, operands and attributes as `(name, kind)` in
/// the order graph nodes give them (the kinds as thunder-ir names them: `"Tensor"`,
/// `"OptTensor"`, `"Int"`, `"OptInts"`, `"DType"`, ...).
#[pyfunction]
fn op_table() -> Vec<OpRow> {
    graph::translated_ops()
        .map(|op| {
            let sig = op.signature();
            (
                op.name(),
                op.info().pytorch.to_vec(),
                sig.operands
                    .iter()
                    .map(|(n, k)| (*n, format!("{k:?}")))
                    .collect(),
                sig.attrs
                    .iter()
                    .map(|(n, k)| (*n, format!("{k:?}")))
                    .collect(),
            )
        })
        .collect()
}

#[pymodule]
#[pyo3(name = "_C")]
fn thunder_c(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CompiledGraph>()?;
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(available_executors, m)?)?;
    m.add_function(wrap_pyfunction!(supported_ops, m)?)?;
    m.add_function(wrap_pyfunction!(op_table, m)?)?;
    m.add_function(wrap_pyfunction!(nccl_unique_id, m)?)?;
    m.add_class::<Communicator>()?;
    m.add_class::<FsdpLayout>()?;
    m.add("ThunderError", m.py().get_type::<ThunderError>())?;
    m.add("UnsupportedError", m.py().get_type::<UnsupportedError>())?;
    m.add("ATEN", graph::ATEN)?;
    Ok(())
}
