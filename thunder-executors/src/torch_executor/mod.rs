//! The torch executor: runs every prim, and a set of torch-level ops whole, through libtorch.
//!
//! Prims map onto ATen calls one by one. For a torch-level op the executor either calls the
//! libtorch op directly (`softmax`, `scaled_dot_product_attention` - libtorch's flash/efficient
//! attention on CUDA -, `cross_entropy`, `linear`, ...) or declines, and the claim pass runs the
//! decomposition instead. [`TorchExecutor::decomposing`] declines every torch-level op, which is how
//! the tests compare both paths.
//!
//! The kernels are grouped by op family: `elementwise`, `reductions`, `shape`, `indexing`,
//! `creation`, `nn`, `attention`, `optimizers` and `opaque` (ATen operators called by name); `operands` reads a kernel's operands at run
//! time and `attrs` a bound symbol's attributes at compile time.

mod attention;
mod attrs;
mod creation;
mod elementwise;
mod error;
mod indexing;
mod nn;
mod opaque;
mod operands;
mod optimizers;
mod reductions;
mod shape;

use crate::convert::{device, kind};
use crate::executor::{Executor, Kernel, KernelError};
use crate::{Error, Result};
use error::CompileError;
use operands::one;
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{Attr, BoundSymbol, NumberType, Op, PrimOp, TorchOp, Trace, ValueType};

pub(crate) use operands::tensor;
#[cfg(feature = "cuda")]
pub(crate) use operands::{contiguous_copy, tensor_list};

type KResult<T> = std::result::Result<T, KernelError>;
/// What compiling a bound symbol gives: why not, when it cannot.
type CResult<T> = std::result::Result<T, CompileError>;

/// Runs prims and (optionally) torch-level ops through libtorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TorchExecutor {
    policy: Policy,
}

/// Which torch-level ops the torch executor calls directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// The ops whose row of the op table says `direct`: where one libtorch call beats the
    /// decomposition.
    Default,
    /// Every torch-level op: eager PyTorch, op by op.
    All,
    /// None: every torch-level op runs its decomposition.
    None,
}

impl Default for TorchExecutor {
    fn default() -> Self {
        TorchExecutor::new()
    }
}

impl TorchExecutor {
    /// Runs the torch-level ops whose row of the op table says `direct` with their libtorch op,
    /// and prims.
    pub fn new() -> Self {
        TorchExecutor {
            policy: Policy::Default,
        }
    }
    /// Runs every torch-level op with its libtorch op: eager PyTorch, one ATen call per op. The
    /// conformance tests use it as the reference.
    pub fn eager() -> Self {
        TorchExecutor {
            policy: Policy::All,
        }
    }
    /// Runs prims only: every torch-level op goes through its decomposition.
    pub fn decomposing() -> Self {
        TorchExecutor {
            policy: Policy::None,
        }
    }
    /// Whether `op` is called directly (rather than decomposed) by this executor.
    pub fn runs_directly(&self, op: TorchOp) -> bool {
        match self.policy {
            Policy::Default => op.info().direct,
            Policy::All => true,
            Policy::None => false,
        }
    }
}

impl Executor for TorchExecutor {
    fn name(&self) -> &'static str {
        match self.policy {
            Policy::Default => "torch",
            Policy::All => "torch-eager",
            Policy::None => "torch-prims",
        }
    }

    fn claims(&self, _trace: &Trace, bsym: &BoundSymbol) -> bool {
        match bsym.op {
            Op::Prim(p) => prim_supported(p, bsym),
            Op::Torch(t) => self.runs_directly(t),
            // A world of one rank: every collective is the identity. Larger worlds need a
            // communicator (thunder-distributed's NCCL executor).
            Op::Dist(d) => d == thunder_ir::DistOp::Wait || d.world_size(&bsym.attrs) == Some(1),
        }
    }

    /// [`TorchExecutor::new`] and [`TorchExecutor::decomposing`] are fallbacks;
    /// [`TorchExecutor::eager`] is not (a plan given only the eager executor appends
    /// [`TorchExecutor::new`] for the ops other executors leave).
    fn is_fallback(&self) -> bool {
        self.policy != Policy::All
    }

    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> Result<Kernel> {
        let unsupported = |why: &dyn std::fmt::Display| Error::Compile {
            executor: self.name(),
            statement: thunder_ir::printer::statement(trace, bsym),
            message: why.to_string(),
        };
        match bsym.op {
            Op::Prim(p) => compile_prim(trace, p, bsym).map_err(|e| unsupported(&e)),
            Op::Torch(t) if self.claims(trace, bsym) => {
                compile_torch(trace, t, bsym).map_err(|e| unsupported(&e))
            }
            Op::Torch(_) => Err(unsupported(&"not claimed by this executor")),
            Op::Dist(_) if self.claims(trace, bsym) => {
                Ok(Box::new(|args| one(tensor(args, 0)?.shallow_clone())))
            }
            Op::Dist(_) => Err(unsupported(
                &"a collective over several ranks needs a communicator (the NCCL executor)",
            )),
        }
    }
}

fn prim_supported(p: PrimOp, bsym: &BoundSymbol) -> bool {
    match p {
        // max_norm renormalizes the weight in place, which a functional trace cannot express.
        PrimOp::Embedding => matches!(bsym.attrs.get(1), Some(Attr::None)),
        _ => true,
    }
}

/// What the kernels of a bound symbol know of its first output.
#[derive(Debug, Clone)]
struct Out {
    /// Its type.
    ty: ValueType,
    /// Its number type, when it is a number.
    number: Option<NumberType>,
    /// Its shape (empty for a number).
    shape: Vec<i64>,
    /// Its dtype (float32 for a number).
    kind: tch::Kind,
    /// Its device (the CPU for a number).
    device: tch::Device,
}

impl Out {
    /// The first output of `bsym`.
    fn of(trace: &Trace, bsym: &BoundSymbol) -> CResult<Out> {
        let ty = attrs::out_ty(trace, bsym, 0)?;
        let (number, shape, kind, device) = match &ty {
            ValueType::Number(n) => (Some(*n), Vec::new(), tch::Kind::Float, tch::Device::Cpu),
            ValueType::Tensor(m) => (
                None,
                m.shape.sizes().iter().map(|&s| s as i64).collect(),
                kind(m.dtype),
                device(m.device),
            ),
        };
        Ok(Out {
            ty,
            number,
            shape,
            kind,
            device,
        })
    }
}

/// A prim's kernel: each prim maps onto its ATen call.
fn compile_prim(trace: &Trace, p: PrimOp, bsym: &BoundSymbol) -> CResult<Kernel> {
    if p.info().family == thunder_ir::ops::info::Family::Opaque {
        return opaque::prim(trace, p, bsym);
    }
    let out = Out::of(trace, bsym)?;
    match p.class() {
        PrimClass::Unary | PrimClass::Binary | PrimClass::Ternary => {
            return elementwise::math_prim(trace, p, bsym, &out)
        }
        PrimClass::Reduction => return reductions::reduction_prim(p, bsym, &out),
        PrimClass::Other => {}
    }
    type Family = fn(PrimOp, &BoundSymbol, &Out) -> CResult<Option<Kernel>>;
    let families: [Family; 6] = [
        elementwise::prim,
        shape::prim,
        reductions::prim,
        creation::prim,
        indexing::prim,
        nn::prim,
    ];
    for family in families {
        if let Some(k) = family(p, bsym, &out)? {
            return Ok(k);
        }
    }
    Err(CompileError::NoPrimKernel(p.name()))
}

/// A torch-level op's kernel: the ATen call PyTorch makes for it (for the ops the op table does
/// not mark `direct`, used by [`TorchExecutor::eager`], too).
fn compile_torch(trace: &Trace, t: TorchOp, bsym: &BoundSymbol) -> CResult<Kernel> {
    let out = Out::of(trace, bsym)?;
    type Family = fn(TorchOp, &BoundSymbol, &Out) -> CResult<Option<Kernel>>;
    let families: [Family; 8] = [
        elementwise::torch,
        reductions::torch,
        shape::torch,
        indexing::torch,
        creation::torch,
        nn::torch,
        attention::torch,
        optimizers::torch,
    ];
    for family in families {
        if let Some(k) = family(t, bsym, &out)? {
            return Ok(k);
        }
    }
    Err(CompileError::NoTorchKernel(t.name()))
}
