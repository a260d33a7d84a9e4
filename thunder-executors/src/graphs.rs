//! CUDA graphs for execution plans: capture a plan once, then replay it with one launch.
//!
//! [`GraphedPlan`] runs its plan normally on the first call (a warm-up that also compiles and
//! loads every fused kernel), then captures it into a [`CudaGraph`] with copies of that call's
//! inputs as static input buffers. Later calls copy their inputs into those buffers and replay;
//! the outputs are the tensors the capture made, rewritten by every replay (copy them to keep
//! them across calls).
//!
//! A plan that cannot be captured runs uncaptured, and says why once
//! ([`GraphedPlan::fallback_reason`]): never a crash, never a wrong replay. Checked before
//! capturing ([`uncapturable`]):
//! - a tensor on the CPU, or on several devices;
//! - number inputs (a replay would reuse the captured values) or number outputs (read on the
//!   host: a synchronization);
//! - collectives (`dist.*`: the NCCL executor polls them from the host).
//!
//! A capture that CUDA itself refuses (an operation libtorch synchronizes on) falls back too,
//! with CUDA's reason.

use crate::executor::{KernelError, RtValue};
use crate::plan::ExecutionPlan;
use crate::shim::CudaGraph;
use crate::{Error, Result};
use tch::Tensor;
use thunder_ir::{Device, Op, Trace, ValueType};

/// A new tensor with `t`'s values (a graph's input buffer, or a replay's output kept past the
/// next replay).
pub fn copy_of(t: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
    let mut c = t.f_empty_like()?;
    c.f_copy_(t)?;
    Ok(c)
}

/// Why [`StaticInputs::refill`] refused a call's inputs.
#[derive(Debug, thiserror::Error)]
pub enum RefillError {
    /// Another number of inputs than captured.
    #[error("{given} inputs, but the graph was captured with {expected}")]
    Count {
        /// Inputs at the capture.
        expected: usize,
        /// Inputs given.
        given: usize,
    },
    /// An input of another dtype, shape or device than captured, or, at a fixed position,
    /// another tensor.
    #[error("input {index}: expected {expected}, given {given}")]
    Mismatch {
        /// The input's position.
        index: usize,
        /// What the capture had.
        expected: String,
        /// What was given.
        given: String,
    },
    /// The copy into a buffer failed.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// CUDA refused the copy into a buffer.
    #[error("copying input {index} into the graph's buffer: {message}")]
    Copy {
        /// The input's position.
        index: usize,
        /// CUDA's error.
        message: String,
    },
}

/// Copies `src` into `dst` (same dtype, shape and device). Contiguous CUDA tensors take one
/// `cuMemcpyDtoDAsync` on PyTorch's current stream: a replay's host time is mostly its input
/// copies, and libtorch's `copy_` costs several microseconds of dispatch per call.
fn copy_into(index: usize, dst: &Tensor, src: &Tensor) -> std::result::Result<(), RefillError> {
    #[cfg(feature = "cuda")]
    if let (tch::Device::Cuda(d), tch::Device::Cuda(_)) = (dst.device(), src.device()) {
        if dst.is_contiguous() && src.is_contiguous() {
            return copy_contiguous_cuda(index, d, dst, src);
        }
    }
    #[cfg(not(feature = "cuda"))]
    let _ = index;
    let mut dst = dst.shallow_clone();
    dst.f_copy_(src)?;
    Ok(())
}

/// [`copy_into`] for contiguous tensors on CUDA device `d`.
#[cfg(feature = "cuda")]
fn copy_contiguous_cuda(
    index: usize,
    d: usize,
    dst: &Tensor,
    src: &Tensor,
) -> std::result::Result<(), RefillError> {
    let bytes = dst.numel() * dst.kind().elt_size_in_bytes();
    if bytes == 0 {
        return Ok(());
    }
    let err = |e: crate::cuda::CudaError| RefillError::Copy {
        index,
        message: e.to_string(),
    };
    let dev = d as i32;
    crate::cuda::enter_device(dev).map_err(err)?;
    let stream = crate::cuda::current_stream(dev).map_err(err)?;
    // SAFETY: both pointers are live, contiguous CUDA allocations of `bytes` bytes on device
    // `dev` (same dtype and shape, checked by the caller); the copy is queued on the stream the
    // graph replays on, so it is ordered before the replay and after earlier users.
    unsafe { crate::cuda::copy_async(dst.data_ptr() as u64, src.data_ptr() as u64, bytes, stream) }
        .map_err(err)
}

/// The tensors a captured graph reads: copies of the capture's inputs (static buffers), or, at
/// fixed positions (parameters, optimizer state updated in place), the inputs themselves.
/// [`refill`](Self::refill) copies a later call's inputs into them before a replay.
pub struct StaticInputs {
    buffers: Vec<Tensor>,
    fixed: Vec<bool>,
}

impl StaticInputs {
    /// Buffers for `inputs`: a copy of each, except where `fixed[i]` (missing entries are not
    /// fixed).
    pub fn new(inputs: &[Tensor], fixed: &[bool]) -> std::result::Result<Self, tch::TchError> {
        let fixed: Vec<bool> = (0..inputs.len())
            .map(|i| fixed.get(i).copied().unwrap_or(false))
            .collect();
        let buffers = inputs
            .iter()
            .zip(&fixed)
            .map(|(t, &f)| if f { Ok(t.shallow_clone()) } else { copy_of(t) })
            .collect::<std::result::Result<_, _>>()?;
        Ok(StaticInputs { buffers, fixed })
    }

    /// The buffers, to capture the graph on.
    pub fn tensors(&self) -> &[Tensor] {
        &self.buffers
    }

    /// Copies `inputs` into the buffers (an input that is its buffer already is not copied).
    /// Each must have its buffer's dtype, shape and device; a fixed input must be the very
    /// tensor captured. Nothing is copied unless all of them fit.
    pub fn refill(&self, inputs: &[Tensor]) -> std::result::Result<(), RefillError> {
        if inputs.len() != self.buffers.len() {
            return Err(RefillError::Count {
                expected: self.buffers.len(),
                given: inputs.len(),
            });
        }
        let describe = |t: &Tensor| format!("{:?} {:?} on {:?}", t.kind(), t.size(), t.device());
        for (index, ((s, x), &fixed)) in
            self.buffers.iter().zip(inputs).zip(&self.fixed).enumerate()
        {
            if s.size() != x.size() || s.kind() != x.kind() || s.device() != x.device() {
                return Err(RefillError::Mismatch {
                    index,
                    expected: format!("{} (as captured)", describe(s)),
                    given: describe(x),
                });
            }
            if fixed && s.data_ptr() != x.data_ptr() {
                return Err(RefillError::Mismatch {
                    index,
                    expected: "the tensor the graph was captured with (a fixed input)".into(),
                    given: "another tensor".into(),
                });
            }
        }
        for (index, (s, x)) in self.buffers.iter().zip(inputs).enumerate() {
            if s.data_ptr() != x.data_ptr() {
                copy_into(index, s, x)?;
            }
        }
        Ok(())
    }
}

/// Why [`Captured::capture`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// Copying the inputs into the static buffers failed.
    #[error("copying the inputs for the capture failed: {0}")]
    Copy(tch::TchError),
    /// CUDA refused an operation of the captured call.
    #[error("CUDA refused the capture: {0}")]
    Refused(KernelError),
}

/// Why a trace cannot be captured into a CUDA graph ([`uncapturable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UncapturableError {
    /// A tensor input or output is on the CPU.
    #[error("{name} is on the CPU: CUDA graphs capture CUDA work")]
    OnCpu {
        /// The tensor's name in the trace.
        name: String,
    },
    /// The tensor inputs and outputs are on more than one device.
    #[error("the tensors are on several CUDA devices")]
    SeveralDevices {
        /// The device of the first tensor.
        first: usize,
        /// Another tensor's device.
        other: usize,
    },
    /// A number input (a replay would keep its captured value).
    #[error("it takes the number {name}, which a replay would keep at its captured value")]
    NumberInput {
        /// The input's name in the trace.
        name: String,
    },
    /// A number output (read on the host: a synchronization).
    #[error("it returns the number {name}, which is read on the host (a synchronization)")]
    NumberOutput {
        /// The output's name in the trace.
        name: String,
    },
    /// A collective (the NCCL executor polls it from the host).
    #[error("it runs the collective `{op}`, which the NCCL executor checks from the host")]
    Collective {
        /// The collective's op (printed qualified: `dist.all_reduce`).
        op: Op,
    },
    /// Neither a tensor input nor a tensor output: no device to capture on.
    #[error("it has no tensor inputs or outputs")]
    NoTensors,
}

/// A call captured into a CUDA graph: its static input buffers, the graph, and the outputs
/// the capture made (every replay rewrites them).
pub struct Captured<T> {
    inputs: StaticInputs,
    graph: CudaGraph,
    outputs: T,
}

/// Why [`Captured::replay`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The inputs do not fit the buffers.
    #[error(transparent)]
    Refill(#[from] RefillError),
    /// CUDA refused the launch.
    #[error("replaying a CUDA graph: {0}")]
    Launch(String),
}

impl<T> Captured<T> {
    /// Captures `f` on `device`, called on static buffers for `inputs` (copies, or the inputs
    /// themselves where `fixed`). The call is recorded, not run: run `f` once before, so every
    /// kernel is compiled and loaded (a capture may not load modules). Err: why it could not be
    /// captured (a copy failed, or CUDA refused an operation of `f`).
    pub fn capture<E: std::fmt::Display>(
        device: usize,
        inputs: &[Tensor],
        fixed: &[bool],
        f: impl FnOnce(&[Tensor]) -> std::result::Result<T, E>,
    ) -> std::result::Result<Self, CaptureError> {
        let inputs = StaticInputs::new(inputs, fixed).map_err(CaptureError::Copy)?;
        let (graph, outputs) =
            CudaGraph::capture(device, || f(inputs.tensors())).map_err(CaptureError::Refused)?;
        Ok(Captured {
            inputs,
            graph,
            outputs,
        })
    }

    /// Copies `inputs` into the buffers ([`StaticInputs::refill`]) and replays; the outputs are
    /// the capture's own tensors.
    pub fn replay(&self, inputs: &[Tensor]) -> std::result::Result<&T, ReplayError> {
        self.inputs.refill(inputs)?;
        self.graph.replay().map_err(|e| ReplayError::Launch(e.0))?;
        Ok(&self.outputs)
    }
}

/// Why `trace` cannot be captured into a CUDA graph, or None if it can; with its device.
pub fn uncapturable(trace: &Trace) -> std::result::Result<usize, UncapturableError> {
    let mut device = None;
    for &v in trace.inputs.iter().chain(&trace.outputs) {
        let name = || trace.name_of(v).to_string();
        match trace.ty(v) {
            ValueType::Tensor(t) => match t.device {
                Device::Cpu => return Err(UncapturableError::OnCpu { name: name() }),
                Device::Cuda(i) => {
                    let i = i as usize;
                    if let Some(first) = device.filter(|&d| d != i) {
                        return Err(UncapturableError::SeveralDevices { first, other: i });
                    }
                    device = Some(i);
                }
            },
            ValueType::Number(_) if trace.inputs.contains(&v) => {
                return Err(UncapturableError::NumberInput { name: name() })
            }
            ValueType::Number(_) => return Err(UncapturableError::NumberOutput { name: name() }),
        }
    }
    if let Some(b) = trace
        .bound_symbols
        .iter()
        .find(|b| matches!(b.op, Op::Dist(_)))
    {
        return Err(UncapturableError::Collective { op: b.op });
    }
    device.ok_or(UncapturableError::NoTensors)
}

enum State {
    /// Not run yet.
    Fresh,
    /// Captured.
    Captured(Captured<Vec<RtValue>>),
    /// Runs uncaptured, for this reason.
    Uncaptured(String),
}

/// An [`ExecutionPlan`] replayed from a CUDA graph after its first call (see the module docs).
pub struct GraphedPlan {
    plan: ExecutionPlan,
    state: State,
    replays: u64,
    /// Per input: passed as the same tensor every call (parameters, optimizer state), so the
    /// graph reads it in place instead of a copy.
    fixed: Vec<bool>,
}

impl std::fmt::Debug for GraphedPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Fresh => "not run yet".to_string(),
            State::Captured(_) => format!("captured, {} replays", self.replays),
            State::Uncaptured(why) => format!("uncaptured: {why}"),
        };
        write!(f, "GraphedPlan({state})")
    }
}

impl GraphedPlan {
    /// Wraps `plan`; nothing is captured before the first call. Every input is copied into a
    /// static buffer before a replay.
    pub fn new(plan: ExecutionPlan) -> Self {
        GraphedPlan {
            plan,
            state: State::Fresh,
            replays: 0,
            fixed: Vec::new(),
        }
    }

    /// Inputs at `positions` are the same tensors at every call (parameters and optimizer
    /// state, updated in place): the graph uses them directly, without a copy. Passing another
    /// tensor there after the capture is an error.
    pub fn with_fixed_inputs(mut self, positions: &[usize]) -> Self {
        let n = self.plan.claimed().trace.inputs.len();
        self.fixed = (0..n).map(|i| positions.contains(&i)).collect();
        self
    }

    /// The plan.
    pub fn plan(&self) -> &ExecutionPlan {
        &self.plan
    }

    /// Why the plan runs uncaptured (None while it is captured or not run yet).
    pub fn fallback_reason(&self) -> Option<&str> {
        match &self.state {
            State::Uncaptured(why) => Some(why),
            _ => None,
        }
    }

    /// Whether a graph has been captured.
    pub fn is_captured(&self) -> bool {
        matches!(self.state, State::Captured(_))
    }

    /// How many calls replayed the graph.
    pub fn replays(&self) -> u64 {
        self.replays
    }

    /// [`run_tensors`](Self::run_tensors) for inputs that may be numbers: a plan that takes
    /// numbers is never captured (a replay would keep their captured values), so it runs
    /// uncaptured with that reason.
    pub fn run_values(&mut self, inputs: Vec<RtValue>) -> Result<Vec<RtValue>> {
        if matches!(self.state, State::Captured(_))
            || inputs.iter().all(|v| v.as_tensor().is_some())
        {
            let ts: Vec<Tensor> = inputs
                .into_iter()
                .filter_map(RtValue::into_tensor)
                .collect();
            return self.run_tensors(&ts);
        }
        if matches!(self.state, State::Fresh) {
            self.state = State::Uncaptured(
                uncapturable(&self.plan.claimed().trace)
                    .err()
                    .map(|why| why.to_string())
                    .unwrap_or_else(|| {
                        "it takes numbers, which a replay would keep at their captured values"
                            .into()
                    }),
            );
        }
        self.plan.run_owned(inputs)
    }

    /// Runs the plan on `inputs`: the first call runs it normally and captures it, later calls
    /// replay. The outputs of a replay are the graph's own tensors: the next call rewrites them.
    pub fn run_tensors(&mut self, inputs: &[Tensor]) -> Result<Vec<RtValue>> {
        match &self.state {
            State::Captured(_) => return self.replay(inputs),
            State::Uncaptured(_) => {
                return self.plan.run_owned(
                    inputs
                        .iter()
                        .map(|t| RtValue::Tensor(t.shallow_clone()))
                        .collect(),
                )
            }
            State::Fresh => {}
        }
        let ins = || -> Vec<RtValue> {
            inputs
                .iter()
                .map(|t| RtValue::Tensor(t.shallow_clone()))
                .collect()
        };
        // The warm-up: this call's result (and every kernel compiled and loaded before the
        // capture, which may not load modules).
        let outs = self.plan.run_owned(ins())?;
        let device = match uncapturable(&self.plan.claimed().trace) {
            Ok(d) => d,
            Err(why) => {
                self.state = State::Uncaptured(why.to_string());
                return Ok(outs);
            }
        };
        let plan = &self.plan;
        self.state = match Captured::capture(device, inputs, &self.fixed, |statics| {
            plan.run_owned(
                statics
                    .iter()
                    .map(|t| RtValue::Tensor(t.shallow_clone()))
                    .collect(),
            )
        }) {
            Ok(c) => State::Captured(c),
            Err(why) => State::Uncaptured(why.to_string()),
        };
        Ok(outs)
    }

    fn replay(&mut self, inputs: &[Tensor]) -> Result<Vec<RtValue>> {
        let State::Captured(captured) = &self.state else {
            unreachable!("replay of an uncaptured plan")
        };
        let trace = &self.plan.claimed().trace;
        let outputs = captured.replay(inputs).map_err(|e| match e {
            ReplayError::Refill(RefillError::Count { expected, given }) => Error::Input {
                index: given.min(expected),
                name: "(count)".into(),
                expected: format!("{expected} inputs"),
                given: format!("{given} inputs"),
            },
            ReplayError::Refill(RefillError::Mismatch {
                index,
                expected,
                given,
            }) => Error::Input {
                index,
                name: trace
                    .inputs
                    .get(index)
                    .map_or_else(|| "?".into(), |&v| trace.name_of(v).to_string()),
                expected,
                given,
            },
            ReplayError::Refill(RefillError::Torch(t)) => t.into(),
            ReplayError::Refill(e @ RefillError::Copy { .. }) => Error::Kernel {
                executor: "cuda graph",
                line: 0,
                statement: trace.name.clone(),
                message: e.to_string(),
            },
            ReplayError::Launch(message) => Error::Kernel {
                executor: "cuda graph",
                line: 0,
                statement: trace.name.clone(),
                message,
            },
        })?;
        let outputs = outputs.iter().map(RtValue::share).collect();
        self.replays += 1;
        Ok(outputs)
    }
}
