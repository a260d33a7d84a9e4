//! CUDA C++ for a region: the kernels, their parameters and how to launch them.
//!
//! Every value of a region is an expression of an index. Pointwise kernels give each thread one
//! element of an output (16-byte vector loads and stores where every operand read at the output's
//! own index is contiguous, a strided scalar path otherwise) and evaluate the region at that index;
//! a view op (broadcast, reshape, transpose, slice, pad, cat, flip) only changes the index its
//! operand is read at. Rows kernels give each block one row (the leading dims) of the reduced
//! shape: each thread keeps its columns in registers, each reduction is a warp-shuffle and
//! shared-memory block reduction, and the values computed before a reduction are kept for the
//! ones after it, so the row is read from memory once.
//!
//! Arithmetic on 16-bit floats runs in float32 and is rounded to the op's dtype after every op
//! (as eager PyTorch rounds every op's result); float64 runs in double.
//!
//! - `expr`: a value of the region as an expression of an index (the formulas of the prims).
//! - `pointwise`: one thread per output element (with 16-byte vector variants).
//! - `rows`: reductions over trailing dims, one block per row (and column sums the rows kernel
//!   accumulates across its rows).
//! - `columns`: reductions over leading dims, in two stages.

mod columns;
mod expr;
mod pointwise;
mod rows;

use super::partition::{kind, leading_reduction, trailing_reduction, Kind, Region, Schedule};
use columns::columns_kernels;
use expr::Gen;
use pointwise::pointwise_entries;
use rows::rows_entries;
use std::fmt::Write;
use thunder_ir::{Arg, BoundSymbol, DType, Op, PrimOp, Trace, Value, ValueType};

/// Why a region cannot be generated.
///
/// Each message is the one codegen has always given (callers and tests match on it); the fields
/// carry what it leaves out: the value, the op, the dtype. Most variants are invariants the
/// partitioner's checks ([`fusible`]) guarantee, so a region that reaches codegen should not hit
/// them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    /// A region input or output has a dtype with no CUDA storage type.
    #[error("an unsupported dtype")]
    UnsupportedDtype {
        /// The value.
        value: Value,
        /// Its dtype.
        dtype: DType,
    },
    /// A value a kernel stores or reduces into has no dtype (it is a number) or one without a
    /// storage type.
    #[error("dtype")]
    MissingDtype {
        /// The value.
        value: Value,
        /// Its dtype, if it is a tensor.
        dtype: Option<DType>,
    },
    /// A region input is a complex number (kernel parameters are real).
    #[error("a complex number input")]
    ComplexInput {
        /// The input.
        value: Value,
    },
    /// A region output, or the result of an op of the region, is a number, not a tensor.
    #[error("a number output")]
    NumberOutput {
        /// The value.
        value: Value,
    },
    /// A value the kernel reads as a tensor is a number.
    #[error("not a tensor")]
    NotATensor {
        /// The value.
        value: Value,
    },
    /// An op's tensor operand is missing or not a value.
    #[error("{what} of a non-tensor")]
    NonTensorOperand {
        /// The op.
        op: Op,
        /// How the message names it (`reduction`, `reshape`, `broadcast`, ...).
        what: &'static str,
    },
    /// `prims.cat`'s operand is not a list of tensors.
    #[error("cat of a non-list")]
    CatOfNonList,
    /// An operand of an elementwise prim is neither a literal nor a value.
    #[error("an operand that is not a value")]
    OperandNotAValue,
    /// An attribute of a prim has the wrong kind (`padding_config`, `iota start`, ...).
    #[error("bad {attr}")]
    BadAttr {
        /// The prim.
        op: PrimOp,
        /// The attribute, as the message names it.
        attr: &'static str,
    },
    /// An op of the region is not a prim (a torch-level op or a collective).
    #[error("a torch-level op inside a region")]
    NotAPrim {
        /// The op.
        op: Op,
    },
    /// An elementwise prim without a CUDA formula.
    #[error("no formula for prims.{}", .op.name())]
    NoFormula {
        /// The prim.
        op: PrimOp,
    },
    /// A reduction's bound symbol is not a prim.
    #[error("not a reduction")]
    NotAReduction {
        /// The op.
        op: Op,
    },
    /// A reduction prim codegen has no identity and combining function for.
    #[error("prims.{} is not a fusible reduction", .op.name())]
    NotFusibleReduction {
        /// The prim.
        op: PrimOp,
    },
    /// A reduction's result read as an elementwise value (a fusion codegen bug).
    #[error("prims.{} read outside its row loop (a fusion codegen bug)", .op.name())]
    ReductionOutsideRowLoop {
        /// The reduction.
        op: PrimOp,
    },
    /// A value neither a region input nor the result of an op of the region.
    #[error("value {} is neither an input nor computed", .value.0)]
    Undefined {
        /// The value.
        value: Value,
    },
}

/// The longest row a rows kernel reduces (elements).
pub const MAX_ROW: usize = 32 * 1024;

/// One kernel launch of a region.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelEntry {
    /// The `extern "C"` entry point.
    pub name: String,
    /// The region outputs (indices into [`Region::outputs`]) it writes.
    pub outputs: Vec<usize>,
    /// How to launch it.
    pub launch: Launch,
}

/// A launch configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// `numel` elements, one per thread in a grid-stride loop; with `vector`, a second entry
    /// point (`<name>_vec`) handles `vector` consecutive elements per thread with 16-byte accesses,
    /// usable when the `direct` inputs are contiguous and every pointer is aligned.
    Pointwise {
        /// Elements.
        numel: usize,
        /// Elements per thread of the vector variant (`None`: no vector variant).
        vector: Option<usize>,
        /// Region inputs (indices into [`Region::inputs`]) the vector variant reads contiguously.
        direct: Vec<usize>,
    },
    /// `blocks` blocks of `threads` threads, looping over `rows` rows.
    Rows {
        /// Rows (the product of the leading dims).
        rows: usize,
        /// Threads per block.
        threads: u32,
        /// Blocks: one per row, or more when the kernel also writes a larger output computed
        /// from the inputs alone.
        blocks: usize,
        /// The vector variant (`<name>_vec`): elements per access, threads, blocks. Usable when
        /// the `direct` inputs are contiguous and every pointer is aligned.
        vector: Option<(usize, u32, usize)>,
        /// Region inputs the vector variant reads with vector loads.
        direct: Vec<usize>,
        /// Bytes of workspace the kernel takes after the region's parameters (the partials of
        /// the column sums it accumulates; 0: none, and no such parameter).
        workspace: usize,
    },
    /// A stage of a columns region: `blocks` blocks of `threads` threads. Besides the region's
    /// parameters the kernel takes a workspace of `workspace` bytes (the partial results), shared
    /// by the region's stages of one run.
    Columns {
        /// Blocks.
        blocks: usize,
        /// Threads per block.
        threads: u32,
        /// Workspace bytes.
        workspace: usize,
        /// Whether a second entry point (`<name>_vec`) takes the tensor inputs as contiguous
        /// (their strides compiled in): usable when every one of them is.
        contiguous: bool,
    },
}

/// The generated source of a region and its entry points, in launch order. Every entry takes the
/// same parameters: per region input a pointer and one stride per dim (tensors) or the value
/// (numbers: `double` or `long long`), then one pointer per region output.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionKernel {
    /// CUDA C++.
    pub source: String,
    /// Launches.
    pub entries: Vec<KernelEntry>,
}

/// The storage type of a dtype in CUDA C++, or `None` when fusion does not take it.
pub fn storage_type(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::F64 => "double",
        DType::F32 => "float",
        DType::F16 => "__half",
        DType::BF16 => "__nv_bfloat16",
        DType::I64 => "long long",
        DType::I32 => "int",
        DType::I16 => "short",
        DType::I8 => "signed char",
        DType::U8 => "unsigned char",
        DType::Bool => "bool",
        _ => return None,
    })
}

/// The storage type of a floating dtype (float16, bfloat16, float32, float64), `None` for others:
/// what the cross-entropy and AdamW kernels take.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn float_storage_type(d: DType) -> Option<&'static str> {
    storage_type(d).filter(|_| d.is_float())
}

/// The type arithmetic on a dtype runs in.
fn compute_type(d: DType) -> &'static str {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => "float",
        other => storage_type(other).unwrap_or("float"),
    }
}

/// Whether the fusion executor can run `b` inside a region: a prim it has a formula for, on
/// dtypes it handles, with reductions over trailing dims (rows of at most [`MAX_ROW`]) or over
/// leading dims.
pub fn fusible(trace: &Trace, b: &BoundSymbol) -> bool {
    let Op::Prim(op) = b.op else { return false };
    let Some(k) = kind(op) else { return false };
    // Arithmetic on numbers (in traces the grad transform writes) runs on the host.
    if b.outputs.iter().any(|&o| trace.tensor(o).is_none()) {
        return false;
    }
    let dtypes_ok = b
        .inputs()
        .iter()
        .chain(&b.outputs)
        .all(|&v| match trace.ty(v) {
            ValueType::Tensor(t) => storage_type(t.dtype).is_some(),
            ValueType::Number(_) => true,
        });
    if !dtypes_ok {
        return false;
    }
    let out_dtype = trace.tensor(b.outputs[0]).map(|t| t.dtype);
    let operand_dtype = b
        .args
        .first()
        .and_then(Arg::as_value)
        .and_then(|v| trace.tensor(v))
        .map(|t| t.dtype);
    let float = |d: Option<DType>| d.is_some_and(|d| d.is_float());
    use PrimOp::*;
    match k {
        Kind::Reduction => {
            // Warp shuffles take 32- and 64-bit values; a row must fit in registers (32 values
            // per thread of a 1024-thread block): longer rows are left to libtorch.
            (trailing_reduction(trace, b).is_some_and(|(full, k)| {
                full[full.len() - k..].iter().product::<usize>() <= MAX_ROW
            }) || leading_reduction(trace, b).is_some())
                && out_dtype.is_some_and(|d| {
                    matches!(compute_type(d), "float" | "double" | "long long" | "int")
                })
                && operand_dtype == out_dtype
        }
        Kind::View => true,
        Kind::Elementwise => match op {
            // Integer division and power follow rules the kernels do not implement (the ops
            // without a CUDA formula at all are not `fuse` in the op table: `kind` is `None`).
            Div | Pow => float(out_dtype),
            Exp | Exp2 | Expm1 | Log | Log1p | Log2 | Log10 | Sqrt | Rsqrt | Reciprocal | Sin
            | Cos | Tan | Asin | Acos | Atan | Sinh | Cosh | Tanh | Asinh | Acosh | Atanh | Erf
            | Erfc | Erfinv | Lgamma | Floor | Ceil | Round | Trunc | Atan2 => float(out_dtype),
            Iota => true,
            _ => true,
        },
    }
}

/// 16-byte vectors per thread the vector variant of a rows kernel aims for (up to 512 threads
/// per row): `THUNDER_ROWS_VECTORS_PER_THREAD` (1 to 16), default 1. Measured on an H200 at
/// Llama-2-7B sizes (1 / 2 / 4 / 8): residual add + RMSNorm 0.037 / 0.051 / 0.057 / 0.070 ms,
/// RMSNorm 0.026 / 0.027 / 0.037 / 0.055 ms; softmax over 32000 is the same for all (its rows
/// hit the 512-thread cap).
pub fn rows_vectors_per_thread() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("THUNDER_ROWS_VECTORS_PER_THREAD")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| (1..=16).contains(n))
            .unwrap_or(1)
    })
}

/// `THUNDER_MIN_BLOCKS_PER_SM` (1 to 8), if set.
fn min_blocks_override() -> Option<usize> {
    static N: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("THUNDER_MIN_BLOCKS_PER_SM")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| (1..=8).contains(n))
    })
}

/// Blocks per SM the rows kernels (and the cross-entropy kernels) ask the compiler to fit
/// (`__launch_bounds__(threads, n)`, which caps registers per thread at 64K / (threads * n)):
/// `THUNDER_MIN_BLOCKS_PER_SM` (1 to 8), default 2, so that one block's reductions overlap
/// another's loads. Rows of one 16-byte vector per thread ask for 4 unless the variable is set
/// (measured on an H200: RMSNorm over 4096 0.023 ms with 4, 0.026 with 2; softmax over 32000,
/// with 8 vectors per thread, 0.43 ms with 4 and 0.26 with 2).
pub fn min_blocks_per_sm() -> usize {
    min_blocks_override().unwrap_or(2)
}

/// `__launch_bounds__` for a block of `threads` threads of a rows kernel.
pub(crate) fn rows_launch_bounds(threads: usize) -> String {
    launch_bounds(threads, min_blocks_per_sm())
}

/// `__launch_bounds__` for a rows kernel whose threads take one 16-byte vector of a row.
fn short_rows_launch_bounds(threads: usize) -> String {
    launch_bounds(threads, min_blocks_override().unwrap_or(4))
}

fn launch_bounds(threads: usize, blocks: usize) -> String {
    let n = blocks.min((2048 / threads.max(1)).max(1));
    format!("__launch_bounds__({threads}, {n})")
}

/// Helpers every generated source starts with (conversions, stores, reductions).
pub(crate) const PRELUDE: &str = r#"#include <cuda_fp16.h>
#include <cuda_bf16.h>
__device__ __forceinline__ float tc(__half x) { return __half2float(x); }
__device__ __forceinline__ float tc(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float tc(float x) { return x; }
__device__ __forceinline__ double tc(double x) { return x; }
__device__ __forceinline__ long long tc(long long x) { return x; }
__device__ __forceinline__ int tc(int x) { return x; }
__device__ __forceinline__ short tc(short x) { return x; }
__device__ __forceinline__ signed char tc(signed char x) { return x; }
__device__ __forceinline__ unsigned char tc(unsigned char x) { return x; }
__device__ __forceinline__ bool tc(bool x) { return x; }
__device__ __forceinline__ void st(__half* p, float x) { *p = __float2half_rn(x); }
__device__ __forceinline__ void st(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }
template <typename S, typename T> __device__ __forceinline__ void st(S* p, T x) { *p = (S)x; }
__device__ __forceinline__ float rnd_f16(float x) { return __half2float(__float2half_rn(x)); }
__device__ __forceinline__ float rnd_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
template <typename T> __device__ __forceinline__ T nan_max(T a, T b) { return (a != a || a > b) ? a : ((b != b) ? b : b); }
template <typename T> __device__ __forceinline__ T nan_min(T a, T b) { return (a != a || a < b) ? a : ((b != b) ? b : b); }
template <typename T> __device__ __forceinline__ T py_rem(T a, T b) { T r = a % b; return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }
__device__ __forceinline__ float py_rem(float a, float b) { float r = fmodf(a, b); return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r; }
__device__ __forceinline__ double py_rem(double a, double b) { double r = fmod(a, b); return (r != 0.0 && ((r < 0.0) != (b < 0.0))) ? r + b : r; }
template <typename T> __device__ __forceinline__ T c_fmod(T a, T b) { return a % b; }
__device__ __forceinline__ float c_fmod(float a, float b) { return fmodf(a, b); }
__device__ __forceinline__ double c_fmod(double a, double b) { return fmod(a, b); }
template <typename T> __device__ __forceinline__ T sgn(T x) { return x > (T)0 ? (T)1 : (x < (T)0 ? (T)-1 : x); }
template <typename T> __device__ __forceinline__ T absv(T x) { return x < (T)0 ? -x : x; }
__device__ __forceinline__ float absv(float x) { return fabsf(x); }
__device__ __forceinline__ double absv(double x) { return fabs(x); }
template <typename T> __device__ __forceinline__ T red_sum(T a, T b) { return a + b; }
template <typename T> __device__ __forceinline__ T red_prod(T a, T b) { return a * b; }
template <typename T> __device__ __forceinline__ T red_max(T a, T b) { return nan_max(a, b); }
template <typename T> __device__ __forceinline__ T red_min(T a, T b) { return nan_min(a, b); }
#define BLOCK_REDUCE(T, OP, v, smem, ident)                                        \
  do {                                                                             \
    for (int o_ = 16; o_ > 0; o_ >>= 1) v = OP(v, __shfl_xor_sync(0xffffffffu, v, o_)); \
    __syncthreads();                                                               \
    if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;                       \
    __syncthreads();                                                               \
    int nw_ = (blockDim.x + 31) >> 5;                                              \
    v = (int)threadIdx.x < nw_ ? smem[threadIdx.x] : (ident);                      \
    if (threadIdx.x < 32) {                                                        \
      for (int o_ = 16; o_ > 0; o_ >>= 1) v = OP(v, __shfl_xor_sync(0xffffffffu, v, o_)); \
      if (threadIdx.x == 0) smem[32] = v;                                          \
    }                                                                              \
    __syncthreads();                                                               \
    v = smem[32];                                                                  \
  } while (0)
"#;

/// The kernel parameters, shared by every entry of a region.
fn params(trace: &Trace, region: &Region) -> Result<String, GenError> {
    let mut ps = Vec::new();
    for (k, &v) in region.inputs.iter().enumerate() {
        match trace.ty(v) {
            ValueType::Tensor(t) => {
                let st = storage_type(t.dtype).ok_or(GenError::UnsupportedDtype {
                    value: v,
                    dtype: t.dtype,
                })?;
                ps.push(format!("const {st}* __restrict__ in{k}"));
                for d in 0..t.rank() {
                    ps.push(format!("long long s{k}_{d}"));
                }
            }
            ValueType::Number(n) => ps.push(format!(
                "{} p{k}",
                match n {
                    thunder_ir::NumberType::Int => "long long",
                    thunder_ir::NumberType::Float => "double",
                    thunder_ir::NumberType::Bool => "bool",
                    thunder_ir::NumberType::Complex => {
                        return Err(GenError::ComplexInput { value: v });
                    }
                }
            )),
        }
    }
    for (k, &o) in region.outputs.iter().enumerate() {
        let t = trace.tensor(o).ok_or(GenError::NumberOutput { value: o })?;
        let st = storage_type(t.dtype).ok_or(GenError::UnsupportedDtype {
            value: o,
            dtype: t.dtype,
        })?;
        ps.push(format!("{st}* __restrict__ out{k}"));
    }
    Ok(ps.join(", "))
}

/// Generates the kernels of `region` (whose op indices refer to `ops`). `name` prefixes the entry
/// points.
pub fn generate(
    trace: &Trace,
    ops: &[BoundSymbol],
    region: &Region,
    name: &str,
) -> Result<RegionKernel, GenError> {
    let mut g = Gen::new(trace, ops, region);
    let ps = params(trace, region)?;
    let mut source = String::from(PRELUDE);
    let _ = writeln!(source, "typedef {} idx_t;", g.idx);
    let entries = match &region.schedule {
        Schedule::Pointwise => {
            let all: Vec<usize> = (0..region.outputs.len()).collect();
            pointwise_entries(&mut g, &mut source, &ps, region, ops, &all, name)?
        }
        Schedule::Rows { full, k } => {
            rows_entries(&mut g, &mut source, &ps, region, ops, full, *k, name)?
        }
        Schedule::Columns { full, k } => {
            columns_kernels(&mut g, &mut source, &ps, region, ops, full, *k, name)?
        }
    };
    Ok(RegionKernel { source, entries })
}

#[cfg(test)]
mod tests {
    use super::GenError;
    use thunder_ir::{DType, Op, PrimOp, Value};

    #[test]
    fn gen_errors_keep_their_messages() {
        let v = Value(3);
        let cases = [
            (
                GenError::UnsupportedDtype {
                    value: v,
                    dtype: DType::C64,
                },
                "an unsupported dtype",
            ),
            (
                GenError::MissingDtype {
                    value: v,
                    dtype: None,
                },
                "dtype",
            ),
            (
                GenError::NonTensorOperand {
                    op: Op::Prim(PrimOp::Sum),
                    what: "reduction",
                },
                "reduction of a non-tensor",
            ),
            (
                GenError::BadAttr {
                    op: PrimOp::Pad,
                    attr: "padding_config",
                },
                "bad padding_config",
            ),
            (
                GenError::NoFormula { op: PrimOp::Sum },
                "no formula for prims.sum",
            ),
            (
                GenError::NotFusibleReduction { op: PrimOp::Add },
                "prims.add is not a fusible reduction",
            ),
            (
                GenError::ReductionOutsideRowLoop { op: PrimOp::Sum },
                "prims.sum read outside its row loop (a fusion codegen bug)",
            ),
            (
                GenError::Undefined { value: v },
                "value 3 is neither an input nor computed",
            ),
        ];
        for (e, msg) in cases {
            assert_eq!(e.to_string(), msg);
        }
    }
}
