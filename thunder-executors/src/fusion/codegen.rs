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

use super::partition::{kind, leading_reduction, trailing_reduction, Kind, Region, Schedule};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{Arg, Attr, BoundSymbol, DType, Op, PrimOp, Trace, Value, ValueType};

/// Why a region cannot be generated.
pub type GenError = String;

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
            // Digamma and polygamma have no CUDA library function; integer division and power
            // follow rules the kernels do not implement.
            Digamma | Polygamma | Real | Imag => false,
            Div | Pow => float(out_dtype),
            Exp | Exp2 | Expm1 | Log | Log1p | Log2 | Log10 | Sqrt | Rsqrt | Reciprocal | Sin
            | Cos | Tan | Asin | Acos | Atan | Sinh | Cosh | Tanh | Asinh | Acosh | Atanh | Erf
            | Erfc | Erfinv | Lgamma | Floor | Ceil | Round | Trunc | Atan2 => float(out_dtype),
            Iota => true,
            _ => true,
        },
    }
}

/// A C literal of `x` in compute type `ty`.
fn float_lit(x: f64, ty: &str) -> String {
    let double = ty == "double";
    if x.is_nan() {
        return if double {
            "__longlong_as_double(0x7ff8000000000000LL)".into()
        } else {
            "__int_as_float(0x7fc00000)".into()
        };
    }
    if x.is_infinite() {
        let neg = x < 0.0;
        return match (double, neg) {
            (true, false) => "__longlong_as_double(0x7ff0000000000000LL)".into(),
            (true, true) => "__longlong_as_double(0xfff0000000000000ULL)".into(),
            (false, false) => "__int_as_float(0x7f800000)".into(),
            (false, true) => "__int_as_float(0xff800000)".into(),
        };
    }
    format!("(({ty}){x:e})")
}

fn literal(a: &Arg, ty: &str) -> Option<String> {
    Some(match a {
        Arg::Int(i) => {
            if ty == "float" || ty == "double" {
                float_lit(*i as f64, ty)
            } else {
                format!("(({ty}){i}LL)")
            }
        }
        Arg::Float(f) => float_lit(*f, ty),
        Arg::Bool(b) => format!("(({ty}){})", if *b { 1 } else { 0 }),
        _ => return None,
    })
}

/// A number attribute (a fill or padding value) as a C literal in compute type `ty`.
fn attr_literal(a: &Attr, ty: &str) -> Option<String> {
    match a {
        Attr::Float(f) => literal(&Arg::Float(*f), ty),
        Attr::Int(i) => literal(&Arg::Int(*i), ty),
        Attr::Bool(x) => literal(&Arg::Bool(*x), ty),
        _ => None,
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

/// How the generator reaches region inputs: strided loads, or (vector variant) a register array.
#[derive(Clone)]
enum InputAccess {
    Strided,
    /// `arr[e]` for the inputs read at the output's index.
    /// Only where the input is read at the home index (the element being computed); a read at
    /// another index (through a pad, a slice, a flip...) goes through the strides.
    Direct(HashMap<usize, String>, Vec<String>),
}

/// `idx` with the index of every size-1 dim of `t` replaced by `0`.
fn canonical_index(idx: &[String], t: &thunder_ir::TensorMeta) -> Vec<String> {
    idx.iter()
        .enumerate()
        .map(|(d, i)| {
            if t.shape.size(d) == 1 {
                "0".to_string()
            } else {
                i.clone()
            }
        })
        .collect()
}

struct Gen<'a> {
    trace: &'a Trace,
    producer: HashMap<Value, &'a BoundSymbol>,
    input_pos: HashMap<Value, usize>,
    /// A number per value of the region (inputs first, then results in program order), used in
    /// the names of the kernel's variables instead of the trace's numbering: regions that
    /// compute the same thing on values of the same types (a model's layers) get the same
    /// source, which compiles once.
    ids: HashMap<Value, usize>,
    idx: &'static str,
    tmp: usize,
}

/// A block of statements being built, with its memo of evaluated (value, index) pairs.
struct Block {
    code: String,
    memo: HashMap<String, String>,
    indent: usize,
}

impl Block {
    fn new(indent: usize, memo: HashMap<String, String>) -> Self {
        Block {
            code: String::new(),
            memo,
            indent,
        }
    }
    /// Declares `const idx_t <prefix><d>` for the multi-index of linear index `lin` in `shape`;
    /// returns one name per dim (`0` for size-1 dims, which need no variable).
    fn index(&mut self, prefix: &str, lin: &str, shape: &[usize]) -> Vec<String> {
        unravel(lin, shape)
            .into_iter()
            .enumerate()
            .map(|(d, e)| {
                if shape[d] == 1 {
                    return "0".to_string();
                }
                let n = format!("{prefix}{d}");
                self.line(&format!("const idx_t {n} = {e};"));
                n
            })
            .collect()
    }
    fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.code.push_str("  ");
        }
        self.code.push_str(s);
        self.code.push('\n');
    }
}

fn shape_of(trace: &Trace, v: Value) -> Vec<usize> {
    trace.tensor(v).map(|t| t.shape.sizes()).unwrap_or_default()
}

fn dtype_of(trace: &Trace, v: Value) -> Option<DType> {
    trace.tensor(v).map(|t| t.dtype)
}

fn ints_attr(a: &Attr) -> Vec<i64> {
    match a {
        Attr::Ints(v) => v.clone(),
        _ => Vec::new(),
    }
}

/// `C` expressions for the multi-index of linear index `lin` in `shape`.
fn unravel(lin: &str, shape: &[usize]) -> Vec<String> {
    let mut out = Vec::with_capacity(shape.len());
    let mut stride = 1usize;
    let mut strides = vec![0usize; shape.len()];
    for d in (0..shape.len()).rev() {
        strides[d] = stride;
        stride *= shape[d].max(1);
    }
    for d in 0..shape.len() {
        out.push(if shape[d] == 1 {
            "0".to_string()
        } else if d == 0 {
            format!("(({lin}) / {})", strides[d])
        } else if strides[d] == 1 {
            format!("(({lin}) % {})", shape[d])
        } else {
            format!("((({lin}) / {}) % {})", strides[d], shape[d])
        });
    }
    out
}

fn ravel(idx: &[String], shape: &[usize]) -> String {
    if idx.is_empty() {
        return "0".into();
    }
    let mut s = String::new();
    for (d, i) in idx.iter().enumerate() {
        if d == 0 {
            s = i.clone();
        } else {
            s = format!("(({s}) * {} + {i})", shape[d]);
        }
    }
    s
}

impl<'a> Gen<'a> {
    /// The region's number for `v` (see [`Gen::ids`]).
    fn id(&self, v: Value) -> usize {
        self.ids
            .get(&v)
            .copied()
            .unwrap_or(1_000_000 + v.0 as usize)
    }

    fn fresh(&mut self, p: &str) -> String {
        self.tmp += 1;
        format!("{p}{}", self.tmp)
    }

    /// The compute type of a value.
    fn cty(&self, v: Value) -> &'static str {
        match self.trace.ty(v) {
            ValueType::Tensor(t) => compute_type(t.dtype),
            ValueType::Number(n) => match n {
                thunder_ir::NumberType::Int => "long long",
                thunder_ir::NumberType::Bool => "bool",
                _ => "double",
            },
        }
    }

    /// An operand as a `ty` expression: a literal, a number input, or a tensor evaluated at `idx`.
    fn operand(
        &mut self,
        blk: &mut Block,
        a: &Arg,
        idx: &[String],
        ty: &str,
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        if let Some(l) = literal(a, ty) {
            return Ok(l);
        }
        let v = a.as_value().ok_or("an operand that is not a value")?;
        let e = self.eval(blk, v, idx, acc)?;
        Ok(if self.cty(v) == ty {
            e
        } else {
            format!("(({ty}){e})")
        })
    }

    /// Statements computing `v` at `idx` (one expression per dim of `v`); returns its name.
    fn eval(
        &mut self,
        blk: &mut Block,
        v: Value,
        idx: &[String],
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        // A size-1 dim has index 0, however it was reached (so that memo keys agree).
        let canon: Vec<String>;
        let idx: &[String] = match self.trace.tensor(v) {
            Some(t) if t.shape.dims().iter().any(|d| d.value() == 1) => {
                canon = canonical_index(idx, t);
                &canon
            }
            _ => idx,
        };
        let key = format!("{}@{}", v.0, idx.join(","));
        if let Some(n) = blk.memo.get(&key) {
            return Ok(n.clone());
        }
        let name = if let Some(&k) = self.input_pos.get(&v) {
            match self.trace.ty(v) {
                ValueType::Number(_) => format!("p{k}"),
                ValueType::Tensor(t) => {
                    let direct = match acc {
                        InputAccess::Direct(m, home)
                            if home.len() == idx.len() && canonical_index(home, t) == idx =>
                        {
                            m.get(&k).cloned()
                        }
                        _ => None,
                    };
                    let expr = match direct {
                        Some(d) => format!("tc({d})"),
                        None => {
                            let mut off = String::from("0");
                            for (d, i) in idx.iter().enumerate() {
                                if t.shape.size(d) != 1 {
                                    off = format!("{off} + (long long)({i}) * s{k}_{d}");
                                }
                            }
                            format!("tc(in{k}[{off}])")
                        }
                    };
                    let n = self.fresh("x");
                    blk.line(&format!("const {} {n} = {expr};", compute_type(t.dtype)));
                    n
                }
            }
        } else {
            let b = *self
                .producer
                .get(&v)
                .ok_or_else(|| format!("value {} is neither an input nor computed", v.0))?;
            self.eval_op(blk, b, v, idx, acc)?
        };
        blk.memo.insert(key, name.clone());
        Ok(name)
    }

    fn eval_op(
        &mut self,
        blk: &mut Block,
        b: &BoundSymbol,
        v: Value,
        idx: &[String],
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        let Op::Prim(op) = b.op else {
            return Err("a torch-level op inside a region".into());
        };
        let out_dt = dtype_of(self.trace, v).ok_or("a number output")?;
        let ty = compute_type(out_dt);
        use PrimOp::*;
        // View ops: the operand at another index.
        let arg_v = |i: usize| b.args.get(i).and_then(Arg::as_value);
        match op {
            BroadcastInDim => {
                let x = arg_v(0).ok_or("broadcast of a non-tensor")?;
                let xs = shape_of(self.trace, x);
                let bd = ints_attr(&b.attrs[1]);
                let j: Vec<String> = xs
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| {
                        if s == 1 {
                            "0".into()
                        } else {
                            idx[bd[i] as usize].clone()
                        }
                    })
                    .collect();
                return self.eval(blk, x, &j, acc);
            }
            Reshape => {
                let x = arg_v(0).ok_or("reshape of a non-tensor")?;
                let xs = shape_of(self.trace, x);
                let lin = ravel(idx, &shape_of(self.trace, v));
                let n = self.fresh("l");
                blk.line(&format!("const {} {n} = {lin};", self.idx));
                return self.eval(blk, x, &unravel(&n, &xs), acc);
            }
            Transpose => {
                let x = arg_v(0).ok_or("transpose of a non-tensor")?;
                let perm = ints_attr(&b.attrs[0]);
                let mut j = vec![String::new(); perm.len()];
                for (o, &p) in perm.iter().enumerate() {
                    j[p as usize] = idx[o].clone();
                }
                return self.eval(blk, x, &j, acc);
            }
            Squeeze => {
                let x = arg_v(0).ok_or("squeeze of a non-tensor")?;
                let xs = shape_of(self.trace, x);
                let r = xs.len() as i64;
                let dims: HashSet<usize> = ints_attr(&b.attrs[0])
                    .iter()
                    .map(|&d| if d < 0 { d + r } else { d } as usize)
                    .collect();
                let mut it = idx.iter();
                let j: Vec<String> = (0..xs.len())
                    .map(|d| {
                        if dims.contains(&d) {
                            "0".to_string()
                        } else {
                            it.next().cloned().unwrap_or_else(|| "0".into())
                        }
                    })
                    .collect();
                return self.eval(blk, x, &j, acc);
            }
            Slice => {
                let x = arg_v(0).ok_or("slice of a non-tensor")?;
                let start = ints_attr(&b.attrs[0]);
                let strides = ints_attr(&b.attrs[2]);
                let j: Vec<String> = idx
                    .iter()
                    .enumerate()
                    .map(|(d, i)| format!("({} + ({i}) * {})", start[d], strides[d]))
                    .collect();
                return self.eval(blk, x, &j, acc);
            }
            Flip => {
                let x = arg_v(0).ok_or("flip of a non-tensor")?;
                let xs = shape_of(self.trace, x);
                let r = xs.len() as i64;
                let dims: HashSet<usize> = ints_attr(&b.attrs[0])
                    .iter()
                    .map(|&d| if d < 0 { d + r } else { d } as usize)
                    .collect();
                let j: Vec<String> = idx
                    .iter()
                    .enumerate()
                    .map(|(d, i)| {
                        if dims.contains(&d) {
                            format!("({} - ({i}))", xs[d] as i64 - 1)
                        } else {
                            i.clone()
                        }
                    })
                    .collect();
                return self.eval(blk, x, &j, acc);
            }
            Pad => {
                let x = arg_v(0).ok_or("pad of a non-tensor")?;
                let xs = shape_of(self.trace, x);
                let config: Vec<Vec<i64>> = match &b.attrs[1] {
                    Attr::IntLists(c) => c.clone(),
                    _ => return Err("bad padding_config".into()),
                };
                let pad = attr_literal(&b.attrs[0], ty).ok_or("bad padding_value")?;
                let mut conds = Vec::new();
                let mut j = Vec::new();
                for (d, i) in idx.iter().enumerate() {
                    let (lo, step) = (config[d][0], config[d][2] + 1);
                    let p = format!("(({i}) - ({lo}))");
                    conds.push(format!("{p} >= 0"));
                    if step > 1 {
                        conds.push(format!("{p} % {step} == 0"));
                    }
                    conds.push(format!("{p} / {step} < {}", xs[d]));
                    j.push(if step > 1 {
                        format!("({p} / {step})")
                    } else {
                        p
                    });
                }
                return self.select(blk, &conds, x, &j, &pad, ty, acc);
            }
            Cat => {
                let Arg::List(parts) = &b.args[0] else {
                    return Err("cat of a non-list".into());
                };
                let r = shape_of(self.trace, v).len() as i64;
                let dim = match &b.attrs[0] {
                    Attr::Int(d) => (if *d < 0 { d + r } else { *d }) as usize,
                    _ => 0,
                };
                let n = self.fresh("c");
                blk.line(&format!("{ty} {n};"));
                let mut offset = 0usize;
                for (pi, &x) in parts.iter().enumerate() {
                    let size = shape_of(self.trace, x)[dim];
                    let mut j = idx.to_vec();
                    j[dim] = format!("(({}) - {offset})", idx[dim]);
                    let cond = format!("({}) < {}", idx[dim], offset + size);
                    let head = if pi == 0 {
                        format!("if ({cond}) {{")
                    } else if pi + 1 == parts.len() {
                        "else {".to_string()
                    } else {
                        format!("else if ({cond}) {{")
                    };
                    blk.line(&head);
                    let mut inner = Block::new(blk.indent + 1, blk.memo.clone());
                    let e = self.eval(&mut inner, x, &j, acc)?;
                    let cast = if self.cty(x) == ty {
                        e
                    } else {
                        format!("(({ty}){e})")
                    };
                    inner.line(&format!("{n} = {cast};"));
                    blk.code.push_str(&inner.code);
                    blk.line("}");
                    offset += size;
                }
                return Ok(n);
            }
            _ => {}
        }
        if op.class() == PrimClass::Reduction {
            return Err(format!(
                "prims.{} read outside its row loop (a fusion codegen bug)",
                op.name()
            ));
        }
        // Elementwise.
        let expr = match op {
            Full => attr_literal(&b.attrs[1], ty).ok_or("bad fill value")?,
            Iota => {
                let num = |a: &Attr| match a {
                    Attr::Int(i) => literal(&Arg::Int(*i), ty),
                    Attr::Float(f) => literal(&Arg::Float(*f), ty),
                    _ => None,
                };
                let start = num(&b.attrs[1]).ok_or("bad iota start")?;
                let step = num(&b.attrs[2]).ok_or("bad iota step")?;
                format!("({start} + ({ty})({}) * {step})", idx[0])
            }
            ConvertElementType => {
                let x = arg_v(0);
                let src = x.map(|x| self.cty(x)).unwrap_or("double");
                let e = self.operand(blk, &b.args[0], idx, src, acc)?;
                if out_dt == DType::Bool {
                    format!("({e} != 0)")
                } else {
                    format!("(({ty}){e})")
                }
            }
            _ => {
                let class = op.class();
                let operand_ty = match class {
                    PrimClass::Ternary => ty,
                    _ => {
                        // Comparisons compute in the operands' type; the rest in the output's.
                        if out_dt == DType::Bool
                            && !matches!(op, BitwiseAnd | BitwiseOr | BitwiseXor | BitwiseNot)
                        {
                            b.args
                                .iter()
                                .filter_map(Arg::as_value)
                                .find_map(|x| dtype_of(self.trace, x))
                                .map(compute_type)
                                .unwrap_or(ty)
                        } else {
                            ty
                        }
                    }
                };
                let float = operand_ty == "float";
                let f = |name: &str| {
                    if float {
                        format!("{name}f")
                    } else {
                        name.to_string()
                    }
                };
                if class == PrimClass::Ternary {
                    let p = self.operand(blk, &b.args[0], idx, "bool", acc)?;
                    let x = self.operand(blk, &b.args[1], idx, ty, acc)?;
                    let y = self.operand(blk, &b.args[2], idx, ty, acc)?;
                    format!("({p} ? {x} : {y})")
                } else if class == PrimClass::Unary {
                    let a = self.operand(blk, &b.args[0], idx, operand_ty, acc)?;
                    match op {
                        Abs => format!("absv({a})"),
                        Neg => format!("(-{a})"),
                        Exp => format!("{}({a})", f("exp")),
                        Exp2 => format!("{}({a})", f("exp2")),
                        Expm1 => format!("{}({a})", f("expm1")),
                        Log => format!("{}({a})", f("log")),
                        Log1p => format!("{}({a})", f("log1p")),
                        Log2 => format!("{}({a})", f("log2")),
                        Log10 => format!("{}({a})", f("log10")),
                        Sqrt => format!("{}({a})", f("sqrt")),
                        Rsqrt => format!("{}({a})", f("rsqrt")),
                        Reciprocal => format!("(({operand_ty})1 / {a})"),
                        Sin => format!("{}({a})", f("sin")),
                        Cos => format!("{}({a})", f("cos")),
                        Tan => format!("{}({a})", f("tan")),
                        Asin => format!("{}({a})", f("asin")),
                        Acos => format!("{}({a})", f("acos")),
                        Atan => format!("{}({a})", f("atan")),
                        Sinh => format!("{}({a})", f("sinh")),
                        Cosh => format!("{}({a})", f("cosh")),
                        Tanh => format!("{}({a})", f("tanh")),
                        Asinh => format!("{}({a})", f("asinh")),
                        Acosh => format!("{}({a})", f("acosh")),
                        Atanh => format!("{}({a})", f("atanh")),
                        Erf => format!("{}({a})", f("erf")),
                        Erfc => format!("{}({a})", f("erfc")),
                        Erfinv => format!("{}({a})", f("erfinv")),
                        Lgamma => format!("{}({a})", f("lgamma")),
                        Floor => format!("{}({a})", f("floor")),
                        Ceil => format!("{}({a})", f("ceil")),
                        Round => format!("{}({a})", f("rint")),
                        Trunc => format!("{}({a})", f("trunc")),
                        Sign => format!("sgn({a})"),
                        Signbit => {
                            if operand_ty == "float" || operand_ty == "double" {
                                format!("(signbit({a}) != 0)")
                            } else {
                                format!("({a} < 0)")
                            }
                        }
                        IsFinite => {
                            if operand_ty == "float" || operand_ty == "double" {
                                format!("(isfinite({a}) != 0)")
                            } else {
                                "true".into()
                            }
                        }
                        BitwiseNot => {
                            if operand_ty == "bool" {
                                format!("(!{a})")
                            } else {
                                format!("(~{a})")
                            }
                        }
                        other => return Err(format!("no formula for prims.{}", other.name())),
                    }
                } else {
                    let x = self.operand(blk, &b.args[0], idx, operand_ty, acc)?;
                    let y = self.operand(blk, &b.args[1], idx, operand_ty, acc)?;
                    match op {
                        Add => format!("({x} + {y})"),
                        Sub => format!("({x} - {y})"),
                        Mul => format!("({x} * {y})"),
                        Div => format!("({x} / {y})"),
                        Remainder => format!("py_rem({x}, {y})"),
                        Fmod => format!("c_fmod({x}, {y})"),
                        Pow => format!("{}({x}, {y})", f("pow")),
                        Atan2 => format!("{}({x}, {y})", f("atan2")),
                        Maximum => format!("nan_max({x}, {y})"),
                        Minimum => format!("nan_min({x}, {y})"),
                        Eq => format!("({x} == {y})"),
                        Ne => format!("({x} != {y})"),
                        Lt => format!("({x} < {y})"),
                        Le => format!("({x} <= {y})"),
                        Gt => format!("({x} > {y})"),
                        Ge => format!("({x} >= {y})"),
                        BitwiseAnd => format!("({x} & {y})"),
                        BitwiseOr => format!("({x} | {y})"),
                        BitwiseXor => format!("({x} ^ {y})"),
                        ShiftLeft => format!("({x} << {y})"),
                        ShiftRight => format!("({x} >> {y})"),
                        other => return Err(format!("no formula for prims.{}", other.name())),
                    }
                }
            }
        };
        let n = self.fresh("v");
        let rounded = match out_dt {
            DType::BF16 => format!("rnd_bf16({expr})"),
            DType::F16 => format!("rnd_f16({expr})"),
            _ => format!("({ty})({expr})"),
        };
        blk.line(&format!("const {ty} {n} = {rounded};"));
        Ok(n)
    }

    /// `conds ? x(j) : other`, evaluating `x` only where `conds` hold (it may be out of bounds
    /// elsewhere).
    #[allow(clippy::too_many_arguments)]
    fn select(
        &mut self,
        blk: &mut Block,
        conds: &[String],
        x: Value,
        j: &[String],
        other: &str,
        ty: &str,
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        let n = self.fresh("s");
        blk.line(&format!("{ty} {n} = {other};"));
        blk.line(&format!("if ({}) {{", conds.join(" && ")));
        let mut inner = Block::new(blk.indent + 1, blk.memo.clone());
        let e = self.eval(&mut inner, x, j, acc)?;
        let cast = if self.cty(x) == ty {
            e
        } else {
            format!("(({ty}){e})")
        };
        inner.line(&format!("{n} = {cast};"));
        blk.code.push_str(&inner.code);
        blk.line("}");
        Ok(n)
    }
}

/// The kernel parameters, shared by every entry of a region.
fn params(trace: &Trace, region: &Region) -> Result<String, GenError> {
    let mut ps = Vec::new();
    for (k, &v) in region.inputs.iter().enumerate() {
        match trace.ty(v) {
            ValueType::Tensor(t) => {
                let st = storage_type(t.dtype).ok_or("an unsupported dtype")?;
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
                        return Err("a complex number input".into());
                    }
                }
            )),
        }
    }
    for (k, &o) in region.outputs.iter().enumerate() {
        let t = trace.tensor(o).ok_or("a number output")?;
        let st = storage_type(t.dtype).ok_or("an unsupported dtype")?;
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
    let mut producer = HashMap::new();
    for &i in region.ops.iter().chain(&region.recompute) {
        for &o in &ops[i].outputs {
            producer.insert(o, &ops[i]);
        }
    }
    let input_pos: HashMap<Value, usize> = region
        .inputs
        .iter()
        .enumerate()
        .map(|(k, &v)| (v, k))
        .collect();
    let big = region
        .inputs
        .iter()
        .chain(&region.outputs)
        .chain(
            region
                .ops
                .iter()
                .chain(&region.recompute)
                .flat_map(|&i| ops[i].outputs.iter()),
        )
        .filter_map(|&v| trace.tensor(v))
        .any(|t| t.shape.numel() >= (1usize << 31));
    let mut ids: HashMap<Value, usize> = input_pos.clone();
    let mut computed: Vec<usize> = region
        .ops
        .iter()
        .chain(&region.recompute)
        .copied()
        .collect();
    computed.sort_unstable();
    for i in computed {
        for &o in &ops[i].outputs {
            let n = ids.len();
            ids.entry(o).or_insert(n);
        }
    }
    let mut g = Gen {
        trace,
        producer,
        input_pos,
        ids,
        idx: if big { "long long" } else { "int" },
        tmp: 0,
    };
    let ps = params(trace, region)?;
    let mut source = String::from(PRELUDE);
    let _ = writeln!(source, "typedef {} idx_t;", g.idx);
    let mut entries = Vec::new();
    match &region.schedule {
        Schedule::Pointwise => {
            let all: Vec<usize> = (0..region.outputs.len()).collect();
            entries = pointwise_entries(&mut g, &mut source, &ps, region, ops, &all, name)?;
        }
        Schedule::Rows { full, k } => {
            let (rows, threads, blocks, others) = rows_kernel(
                &mut g,
                &mut source,
                &ps,
                region,
                ops,
                full,
                *k,
                name,
                (1, &[]),
            )?;
            let all: Vec<usize> = (0..region.outputs.len())
                .filter(|&j| shape_of(trace, region.outputs[j]) == *full)
                .collect();
            let cols: usize = full[full.len() - k..].iter().product();
            let (vector, direct) = vector_plan(trace, region, &all, full, ops);
            let vector = match vector {
                Some(w) if cols % w == 0 && !direct.is_empty() => {
                    let vname = format!("{name}_vec");
                    let (_, t, b, _) = rows_kernel(
                        &mut g,
                        &mut source,
                        &ps,
                        region,
                        ops,
                        full,
                        *k,
                        &vname,
                        (w, &direct),
                    )?;
                    Some((w, t, b))
                }
                _ => None,
            };
            // Column sums accumulated by the rows kernel: a second kernel adds the blocks'
            // partials.
            let sums: Vec<&BoundSymbol> = region
                .ops
                .iter()
                .map(|&i| &ops[i])
                .filter(|b| {
                    matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::Reduction))
                        && leading_reduction(trace, b).is_some()
                })
                .collect();
            let mut workspace = 0;
            let mut fin_entry = None;
            if !sums.is_empty() {
                let trail = &full[full.len() - k..];
                let (offsets, bytes) = column_workspace(&g, &sums, blocks, cols);
                workspace = bytes;
                let per_column: Vec<usize> = (0..region.outputs.len())
                    .filter(|&j| sums.iter().any(|b| b.outputs[0] == region.outputs[j]))
                    .collect();
                let fin = format!("{name}_fin");
                let wps = format!("{ps}, unsigned char* __restrict__ ws");
                let fin_t = fin_threads(blocks);
                let tiles = columns_fin(
                    &mut g,
                    &mut source,
                    &wps,
                    region,
                    (&sums, &offsets),
                    (blocks, trail),
                    &per_column,
                    fin_t,
                    &fin,
                )?;
                fin_entry = Some(KernelEntry {
                    name: fin,
                    outputs: per_column,
                    launch: Launch::Columns {
                        blocks: tiles,
                        threads: fin_t as u32,
                        workspace,
                        contiguous: false,
                    },
                });
            }
            // The column sums are the second stage's outputs, the other shapes the pointwise
            // kernels' below: each output has one writer.
            let by_fin: Vec<usize> = fin_entry
                .as_ref()
                .map(|e| e.outputs.clone())
                .unwrap_or_default();
            entries.push(KernelEntry {
                name: name.to_string(),
                outputs: (0..region.outputs.len())
                    .filter(|j| !others.contains(j) && !by_fin.contains(j))
                    .collect(),
                launch: Launch::Rows {
                    rows,
                    threads,
                    blocks,
                    vector,
                    direct,
                    workspace,
                },
            });
            entries.extend(fin_entry);
            // Outputs of other shapes (from the region's inputs alone): pointwise kernels of
            // their own, with a full grid and vector accesses, not a tail of the rows kernel,
            // whose blocks are as narrow as its rows.
            let tails = pointwise_entries(
                &mut g,
                &mut source,
                &ps,
                region,
                ops,
                &others,
                &format!("{name}_o"),
            )?;
            entries.extend(tails);
        }
        Schedule::Columns { full, k } => {
            entries = columns_kernels(&mut g, &mut source, &ps, region, ops, full, *k, name)?;
        }
    }
    Ok(RegionKernel { source, entries })
}

/// Partials of a column sum over long rows (two blocks per SM of a 132-SM GPU); shorter rows
/// take 2x or 4x more, and a second stage over more than this many has more warps.
const BASE_SPLITS: usize = 264;

/// Blocks of a rows kernel that also sums columns (each writes one partial per column): a few
/// per SM of a large GPU, at most one per row. Short rows take narrow blocks (a warp for 256
/// columns), so more of them: otherwise each of a few warps per SM walks its rows one after
/// another, bound by memory latency. The same for a kernel's scalar and vector variants (they
/// share the second stage).
fn column_splits(rows: usize, cols: usize) -> usize {
    let most = if cols <= 256 {
        4 * BASE_SPLITS
    } else if cols <= 1024 {
        2 * BASE_SPLITS
    } else {
        BASE_SPLITS
    };
    rows.clamp(1, most)
}

/// Threads of the second stage of a column sum over `splits` partials: more warps for more
/// partials (each warp adds every so many).
fn fin_threads(splits: usize) -> usize {
    if splits > BASE_SPLITS {
        1024
    } else {
        COL_THREADS
    }
}

/// Threads of a columns stage.
const COL_THREADS: usize = 256;
/// Blocks the first stage aims for (a few per SM of a large GPU).
const COL_TARGET_BLOCKS: usize = 1024;
/// Rows of a split at least (fewer splits for fewer rows).
const COL_MIN_ROWS: usize = 16;
/// Rows each thread of the first stage reads per loop iteration.
const COL_UNROLL: usize = 2;
/// Columns each thread of the first stage reduces.
const COL_PER_THREAD: usize = 4;

/// The two kernels of a columns region (see [`Schedule::Columns`]): `<name>_part` reduces a
/// range of rows (a split) of 1024 columns per block (4 per thread) into the workspace;
/// `<name>_fin` combines the splits of 32 columns per block in a fixed order (its 8 warps take
/// every 8th split, then one warp adds their sums), then computes and writes the region's
/// outputs.
#[allow(clippy::too_many_arguments)]
fn columns_kernels(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    ops: &[BoundSymbol],
    full: &[usize],
    k: usize,
    name: &str,
) -> Result<Vec<KernelEntry>, GenError> {
    let trace = g.trace;
    let (lead, trail) = (&full[..k], &full[k..]);
    let rows: usize = lead.iter().product();
    let cols: usize = trail.iter().product();
    let span = COL_THREADS * COL_PER_THREAD;
    let tiles = cols.div_ceil(span).max(1);
    let splits = COL_TARGET_BLOCKS
        .div_ceil(tiles)
        .clamp(1, rows.div_ceil(COL_MIN_ROWS).max(1));
    let per_split = rows.div_ceil(splits).max(1);
    let reductions: Vec<&BoundSymbol> = region
        .ops
        .iter()
        .map(|&i| &ops[i])
        .filter(|b| matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::Reduction)))
        .collect();
    let (offsets, workspace) = column_workspace(g, &reductions, splits, cols);
    let wps = format!("{ps}, unsigned char* __restrict__ ws");
    // Stage 1: thread t of a block takes the columns `tile * span + t + e * THREADS` (e <
    // COL_PER_THREAD: consecutive threads read consecutive columns of a row together, and what
    // depends on the row alone is computed once for the thread's columns) over the rows of the
    // block's split. Columns past the end read the last one and add nothing.
    let mut body = Block::new(1, HashMap::new());
    body.line(&format!(
        "const idx_t tile = (idx_t)blockIdx.x % {tiles}, split = (idx_t)blockIdx.x / {tiles};"
    ));
    body.line(&format!(
        "const idx_t rlo = split * {per_split}, rhi = min(rlo + {per_split}, (idx_t){rows});"
    ));
    let mut accs: Vec<Vec<String>> = Vec::new();
    for b in &reductions {
        let o = b.outputs[0];
        let ty = g.cty(o);
        let (init, _) = red_init(b, ty)?;
        let mut per = Vec::new();
        for e in 0..COL_PER_THREAD {
            let a = format!("acc{}_{e}", g.id(o));
            body.line(&format!("{ty} {a} = {init};"));
            per.push(a);
        }
        accs.push(per);
    }
    for e in 0..COL_PER_THREAD {
        body.line(&format!(
            "const idx_t cu{e} = tile * {span} + threadIdx.x + {};",
            e * COL_THREADS
        ));
        body.line(&format!(
            "const idx_t cc{e} = cu{e} < {cols} ? cu{e} : {};",
            cols.max(1) - 1
        ));
    }
    // COL_UNROLL rows per iteration, their loads independent (several in flight per thread).
    body.line(&format!(
        "for (idx_t rb = rlo; rb < rhi; rb += {COL_UNROLL}) {{"
    ));
    body.line("  #pragma unroll");
    body.line(&format!("  for (int u = 0; u < {COL_UNROLL}; ++u) {{"));
    body.line("  const idx_t r = rb + u;");
    body.line("  if (r < rhi) {");
    let mut inner = Block::new(body.indent + 2, HashMap::new());
    let lead_idx = inner.index("r", "r", lead);
    for e in 0..COL_PER_THREAD {
        let mut idx = lead_idx.clone();
        idx.extend(inner.index(&format!("c{e}_"), &format!("cc{e}"), trail));
        for (b, per) in reductions.iter().zip(&accs) {
            let x = b.args[0].as_value().ok_or("reduction of a non-tensor")?;
            let ty = g.cty(b.outputs[0]);
            let v = g.eval(&mut inner, x, &idx, &InputAccess::Strided)?;
            let (_, comb) = red_init(b, ty)?;
            let a = &per[e];
            inner.line(&format!(
                "if (cu{e} < {cols}) {a} = {comb}({a}, ({ty}){v});"
            ));
        }
    }
    body.code.push_str(&inner.code);
    body.line("  }");
    body.line("  }");
    body.line("}");
    for (j, (b, per)) in reductions.iter().zip(&accs).enumerate() {
        let ty = g.cty(b.outputs[0]);
        for (e, a) in per.iter().enumerate() {
            body.line(&format!(
                "if (cu{e} < {cols}) reinterpret_cast<{ty}*>(ws + {})[split * {cols} + cu{e}] = {a};",
                offsets[j]
            ));
        }
    }
    let decls = "";
    let part = format!("{name}_part");
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void __launch_bounds__({COL_THREADS}) {part}({wps}) {{\n{decls}{}}}",
        body.code
    );
    // The same for contiguous inputs (`<name>_part_vec`): their strides as constants, so the
    // index arithmetic folds.
    let mut fixed = String::new();
    for (k, &v) in region.inputs.iter().enumerate() {
        let Some(t) = trace.tensor(v) else { continue };
        let shape = t.shape.sizes();
        let mut stride = 1usize;
        let mut strides = vec![0usize; shape.len()];
        for d in (0..shape.len()).rev() {
            strides[d] = stride;
            stride *= shape[d].max(1);
        }
        for (d, st) in strides.iter().enumerate() {
            let _ = writeln!(fixed, "  const long long s{k}_{d} = {st}LL;");
        }
    }
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void __launch_bounds__({COL_THREADS}) {part}_vec({wps}) {{\n{decls}{{\n{fixed}{}}}\n}}",
        body.code
    );
    // Stage 2: per column, the splits combined in order; then the outputs.
    let is_reduced_stage = |v: Value| -> bool {
        // Whether v depends on a reduction of the region (else it is computed from inputs).
        let mut stack = vec![v];
        let mut seen = HashSet::new();
        while let Some(u) = stack.pop() {
            if !seen.insert(u) {
                continue;
            }
            if reductions.iter().any(|b| b.outputs[0] == u) {
                return true;
            }
            if let Some(b) = g.producer.get(&u) {
                stack.extend(b.inputs());
            }
        }
        false
    };
    let per_column: Vec<usize> = (0..region.outputs.len())
        .filter(|&j| is_reduced_stage(region.outputs[j]))
        .collect();
    let others: Vec<usize> = (0..region.outputs.len())
        .filter(|j| !per_column.contains(j))
        .collect();
    let fin = format!("{name}_fin");
    let col_tiles = columns_fin(
        g,
        source,
        &wps,
        region,
        (&reductions, &offsets),
        (splits, trail),
        &per_column,
        COL_THREADS,
        &fin,
    )?;
    let launch = |blocks: usize, contiguous: bool| Launch::Columns {
        blocks: blocks.clamp(1, 1 << 20),
        threads: COL_THREADS as u32,
        workspace,
        contiguous,
    };
    let mut entries = vec![
        KernelEntry {
            name: part,
            outputs: Vec::new(),
            launch: launch(tiles * splits, true),
        },
        KernelEntry {
            name: fin,
            outputs: per_column,
            launch: launch(col_tiles, false),
        },
    ];
    // The other outputs (from the region's inputs alone): pointwise kernels of their own.
    entries.extend(pointwise_entries(
        g,
        source,
        ps,
        region,
        ops,
        &others,
        &format!("{name}_o"),
    )?);
    Ok(entries)
}

/// Pointwise kernels for the region outputs `outs`, one per output shape (`<prefix>_<i>`, with a
/// vector variant where it pays), evaluated from the region's inputs at each output index.
fn pointwise_entries(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    ops: &[BoundSymbol],
    outs: &[usize],
    prefix: &str,
) -> Result<Vec<KernelEntry>, GenError> {
    let trace = g.trace;
    let mut shapes: Vec<Vec<usize>> = Vec::new();
    for &j in outs {
        let s = shape_of(trace, region.outputs[j]);
        if !shapes.contains(&s) {
            shapes.push(s);
        }
    }
    let mut entries = Vec::with_capacity(shapes.len());
    for (si, shape) in shapes.iter().enumerate() {
        let these: Vec<usize> = outs
            .iter()
            .copied()
            .filter(|&j| shape_of(trace, region.outputs[j]) == *shape)
            .collect();
        let ename = format!("{prefix}_{si}");
        let numel: usize = shape.iter().product();
        pointwise(g, source, ps, region, &these, shape, &ename)?;
        let (vector, direct) = vector_plan(trace, region, &these, shape, ops);
        if let Some(vec) = vector {
            pointwise_vec(g, source, ps, region, &these, shape, &ename, vec, &direct)?;
        }
        entries.push(KernelEntry {
            name: ename,
            outputs: these,
            launch: Launch::Pointwise {
                numel,
                vector,
                direct,
            },
        });
    }
    Ok(entries)
}

#[allow(clippy::too_many_arguments)]
fn pointwise(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    outs: &[usize],
    shape: &[usize],
    ename: &str,
) -> Result<(), GenError> {
    let numel: usize = shape.iter().product();
    let mut blk = Block::new(2, HashMap::new());
    let idx_names = blk.index("i", "i", shape);
    for &k in outs {
        let o = region.outputs[k];
        let v = g.eval(&mut blk, o, &idx_names, &InputAccess::Strided)?;
        blk.line(&format!("st(&out{k}[i], {v});"));
    }
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void {ename}({ps}) {{\n  for (idx_t i = (idx_t)blockIdx.x * blockDim.x + threadIdx.x; i < (idx_t){numel}; i += (idx_t)gridDim.x * blockDim.x) {{\n{}  }}\n}}",
        blk.code
    );
    Ok(())
}

/// The vector width of a pointwise kernel and the inputs it reads directly (same shape as the
/// output, used only at the output's own index), or `None` when a vector variant does not pay.
fn vector_plan(
    trace: &Trace,
    region: &Region,
    outs: &[usize],
    shape: &[usize],
    ops: &[BoundSymbol],
) -> (Option<usize>, Vec<usize>) {
    let numel: usize = shape.iter().product();
    // Inputs read by a view op go through their index map; the others, of the output's shape,
    // are read at the output's index.
    let viewed: HashSet<Value> = region
        .ops
        .iter()
        .chain(&region.recompute)
        .map(|&i| &ops[i])
        .filter(|b| matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::View)))
        .flat_map(|b| b.inputs())
        .collect();
    let direct: Vec<usize> = region
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            trace.tensor(**v).is_some_and(|t| t.shape.sizes() == shape) && !viewed.contains(v)
        })
        .map(|(k, _)| k)
        .collect();
    let widest = direct
        .iter()
        .map(|&k| region.inputs[k])
        .chain(outs.iter().map(|&k| region.outputs[k]))
        .filter_map(|v| trace.tensor(v).map(|t| t.dtype.itemsize()))
        .max()
        .unwrap_or(1);
    let vec = (16 / widest).max(1);
    if vec < 2 || numel % vec != 0 || numel < vec * 256 {
        return (None, direct);
    }
    (Some(vec), direct)
}

fn vec_type(bytes: usize) -> &'static str {
    match bytes {
        16 => "uint4",
        8 => "uint2",
        4 => "unsigned int",
        2 => "unsigned short",
        _ => "unsigned char",
    }
}

#[allow(clippy::too_many_arguments)]
fn pointwise_vec(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    outs: &[usize],
    shape: &[usize],
    ename: &str,
    vec: usize,
    direct: &[usize],
) -> Result<(), GenError> {
    let numel: usize = shape.iter().product();
    let mut blk = Block::new(2, HashMap::new());
    blk.line("const idx_t base = i * VEC;");
    let mut access = HashMap::new();
    for &k in direct {
        let t = g.trace.tensor(region.inputs[k]).ok_or("not a tensor")?;
        let st = storage_type(t.dtype).ok_or("dtype")?;
        let bytes = vec * t.dtype.itemsize();
        blk.line(&format!("{st} a{k}[VEC];"));
        blk.line(&format!(
            "*reinterpret_cast<{}*>(a{k}) = *reinterpret_cast<const {}*>(in{k} + base);",
            vec_type(bytes),
            vec_type(bytes)
        ));
        access.insert(k, format!("a{k}[e]"));
    }
    for &k in outs {
        let t = g.trace.tensor(region.outputs[k]).ok_or("not a tensor")?;
        let st = storage_type(t.dtype).ok_or("dtype")?;
        blk.line(&format!("{st} r{k}[VEC];"));
    }
    blk.line("#pragma unroll");
    blk.line("for (int e = 0; e < VEC; ++e) {");
    let mut inner = Block::new(3, HashMap::new());
    let idx_names = inner.index("i", "(base + e)", shape);
    let acc = InputAccess::Direct(access, idx_names.clone());
    for &k in outs {
        let o = region.outputs[k];
        let v = g.eval(&mut inner, o, &idx_names, &acc)?;
        inner.line(&format!("st(&r{k}[e], {v});"));
    }
    blk.code.push_str(&inner.code);
    blk.line("}");
    for &k in outs {
        let t = g.trace.tensor(region.outputs[k]).ok_or("not a tensor")?;
        let bytes = vec * t.dtype.itemsize();
        blk.line(&format!(
            "*reinterpret_cast<{}*>(out{k} + base) = *reinterpret_cast<const {}*>(r{k});",
            vec_type(bytes),
            vec_type(bytes)
        ));
    }
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void {ename}_vec({ps}) {{\n  const int VEC = {vec};\n  for (idx_t i = (idx_t)blockIdx.x * blockDim.x + threadIdx.x; i < (idx_t){}; i += (idx_t)gridDim.x * blockDim.x) {{\n{}  }}\n}}",
        numel / vec,
        blk.code
    );
    Ok(())
}

/// The rows kernel: see the module docs. Returns (rows, threads, blocks, the region outputs it
/// does not write: those of other shapes, computed from the region's inputs alone).
#[allow(clippy::too_many_arguments)]
fn rows_kernel(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    ops: &[BoundSymbol],
    full: &[usize],
    k: usize,
    name: &str,
    (vec, direct): (usize, &[usize]),
) -> Result<(usize, u32, usize, Vec<usize>), GenError> {
    let trace = g.trace;
    let n = full.len();
    let lead = &full[..n - k];
    let trail = &full[n - k..];
    let rows: usize = lead.iter().product();
    let cols: usize = trail.iter().product();
    // Scalar: about 4 columns per thread; vector: about `rows_vectors_per_thread()` vectors
    // per thread, at most 512 threads (a long row then takes more vectors per thread, which the
    // register budget of 128 per thread at 512 threads holds).
    let threads: usize = if vec > 1 {
        cols.div_ceil(rows_vectors_per_thread() * vec)
            .next_power_of_two()
            .clamp(32, 512)
    } else {
        cols.div_ceil(4).next_power_of_two().clamp(32, 1024)
    };
    let per_thread = cols.div_ceil(threads * vec).max(1);

    // Stage of each value: how many reductions it depends on.
    let mut stage: HashMap<Value, usize> = HashMap::new();
    let is_full = |v: Value| shape_of(trace, v) == full;
    for &v in &region.inputs {
        stage.insert(v, 0);
    }
    // Recomputed ops read region inputs alone.
    for &i in &region.recompute {
        for &o in &ops[i].outputs {
            stage.insert(o, 0);
        }
    }
    let mut reductions: Vec<&BoundSymbol> = Vec::new();
    // Column sums (reductions over the leading dims, accumulated across the block's rows) and
    // the stage of their operands.
    let mut column_sums: Vec<(&BoundSymbol, usize)> = Vec::new();
    for &i in &region.ops {
        let b = &ops[i];
        let s_in = b
            .inputs()
            .iter()
            .map(|v| stage.get(v).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        let is_red = matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::Reduction));
        if is_red && leading_reduction(trace, b).is_some() {
            column_sums.push((b, s_in));
            continue;
        }
        let s = if is_red { s_in + 1 } else { s_in };
        for &o in &b.outputs {
            stage.insert(o, s);
        }
        if is_red {
            reductions.push(b);
        }
    }
    let column_outs: Vec<Value> = column_sums.iter().map(|(b, _)| b.outputs[0]).collect();
    let max_stage = stage.values().copied().max().unwrap_or(0);
    // Full values computed in one stage and used in a later one are kept in registers.
    let mut cached: Vec<Value> = Vec::new();
    let cache_if = |v: Value, user_stage: usize, cached: &mut Vec<Value>| {
        if is_full(v) && stage.get(&v).copied().unwrap_or(0) < user_stage && !cached.contains(&v) {
            cached.push(v);
        }
    };
    for &i in &region.ops {
        let b = &ops[i];
        let Some(&us) = stage.get(&b.outputs[0]) else {
            // A column sum: read in its operand's stage.
            continue;
        };
        let is_red = matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::Reduction));
        let us = if is_red { us - 1 } else { us };
        for v in b.inputs() {
            cache_if(v, us, &mut cached);
        }
    }
    // When those values would take more than 32 registers per thread, the vector variant keeps
    // the row's 16-byte loads of its direct inputs in registers instead (packed, 2 bytes per
    // bf16 value) and recomputes what later stages need from them: caching the float32
    // intermediates of a long row would take more registers than the kernel may use (it would
    // spill to memory, or run one block per SM).
    let cache_regs: usize = cached
        .iter()
        .map(|&v| per_thread * vec * dtype_of(trace, v).map_or(1, |d| d.itemsize().div_ceil(4)))
        .sum();
    let raw = vec > 1 && cache_regs > 32;
    if raw {
        cached.clear();
    }
    let mut access = HashMap::new();
    for &kk in direct {
        let a = if raw {
            let t = trace.tensor(region.inputs[kk]).ok_or("not a tensor")?;
            let st = storage_type(t.dtype).ok_or("dtype")?;
            format!("reinterpret_cast<const {st}*>(&a{kk}[j])[e]")
        } else {
            format!("a{kk}[e]")
        };
        access.insert(kk, a);
    }
    let strided = InputAccess::Strided;
    let mut body = Block::new(2, HashMap::new());
    // Row index and the leading multi-index.
    let lead_names = body.index("r", "r", lead);
    for &v in &cached {
        let ty = g.cty(v);
        body.line(&format!("{ty} k{}[PT * VEC];", g.id(v)));
    }
    if raw {
        for &kk in direct {
            let t = trace.tensor(region.inputs[kk]).ok_or("not a tensor")?;
            let vt = vec_type(vec * t.dtype.itemsize());
            body.line(&format!("{vt} a{kk}[PT];"));
        }
    }
    // The first column loop loads the direct inputs; later ones read the registers.
    let mut loaded = false;
    // Reduced values (one per row) evaluated at the leading index; full values at (lead, trail).
    let reduced_shape = lead.to_vec();
    let mut row_memo: HashMap<String, String> = HashMap::new();
    let out_full: Vec<usize> = (0..region.outputs.len())
        .filter(|&j| is_full(region.outputs[j]))
        .collect();
    let out_reduced: Vec<usize> = (0..region.outputs.len())
        .filter(|&j| {
            shape_of(trace, region.outputs[j]) == reduced_shape
                && !is_full(region.outputs[j])
                && !column_outs.contains(&region.outputs[j])
        })
        .collect();
    // Column sums: per thread one accumulator per column it takes, across the block's rows.
    let mut col_decls = String::new();
    for (b, _) in &column_sums {
        let o = b.outputs[0];
        let ty = g.cty(o);
        let (init, _) = red_init(b, ty)?;
        let _ = writeln!(
            col_decls,
            "  {ty} cacc{}[PT * VEC];\n  #pragma unroll\n  for (int q = 0; q < PT * VEC; ++q) cacc{}[q] = {init};",
            g.id(o), g.id(o)
        );
    }
    let mut smem_types: HashSet<&'static str> = HashSet::new();
    for s in 0..=max_stage {
        // The loop over this thread's columns.
        let roots_red: Vec<&BoundSymbol> = reductions
            .iter()
            .copied()
            .filter(|b| stage[&b.outputs[0]] == s + 1)
            .collect();
        let full_outs: Vec<usize> = out_full
            .iter()
            .copied()
            .filter(|&j| stage[&region.outputs[j]] == s)
            .collect();
        let to_cache: Vec<Value> = cached.iter().copied().filter(|v| stage[v] == s).collect();
        let cols_here: Vec<&BoundSymbol> = column_sums
            .iter()
            .filter(|(_, st)| *st == s)
            .map(|(b, _)| *b)
            .collect();
        let mut accs = Vec::new();
        for b in &roots_red {
            let o = b.outputs[0];
            let ty = g.cty(o);
            let (init, _) = red_init(b, ty)?;
            let a = format!("acc{}", g.id(o));
            body.line(&format!("{ty} {a} = {init};"));
            accs.push(a);
        }
        if roots_red.is_empty()
            && full_outs.is_empty()
            && to_cache.is_empty()
            && cols_here.is_empty()
        {
            continue;
        }
        body.line("#pragma unroll");
        body.line("for (int j = 0; j < PT; ++j) {");
        body.line("  const idx_t cb = ((idx_t)threadIdx.x + (idx_t)j * blockDim.x) * VEC;");
        body.line(&format!("  if (cb < {cols}) {{"));
        if vec > 1 {
            for &kk in direct {
                let t = trace.tensor(region.inputs[kk]).ok_or("not a tensor")?;
                let vt = vec_type(vec * t.dtype.itemsize());
                let src =
                    format!("*reinterpret_cast<const {vt}*>(in{kk} + (idx_t)r * {cols} + cb)");
                if !raw {
                    let st = storage_type(t.dtype).ok_or("dtype")?;
                    body.line(&format!("    {st} a{kk}[VEC];"));
                    body.line(&format!("    *reinterpret_cast<{vt}*>(a{kk}) = {src};"));
                } else if !loaded {
                    body.line(&format!("    a{kk}[j] = {src};"));
                }
            }
            loaded = true;
            for &j in &out_full {
                if stage[&region.outputs[j]] == s {
                    let t = trace.tensor(region.outputs[j]).ok_or("not a tensor")?;
                    let st = storage_type(t.dtype).ok_or("dtype")?;
                    body.line(&format!("    {st} w{j}[VEC];"));
                }
            }
        }
        body.line("    #pragma unroll");
        body.line("    for (int e = 0; e < VEC; ++e) {");
        body.line("    const idx_t c = cb + e;");
        let mut inner = Block::new(body.indent + 2, row_memo.clone());
        let mut idx_names = lead_names.clone();
        idx_names.extend(inner.index("c", "c", trail));
        let acc_mode = if vec > 1 {
            InputAccess::Direct(access.clone(), idx_names.clone())
        } else {
            InputAccess::Strided
        };
        // Cached values of earlier stages are read from registers.
        for &v in &cached {
            if stage[&v] < s {
                inner.memo.insert(
                    format!("{}@{}", v.0, idx_names.join(",")),
                    format!("k{}[j * VEC + e]", g.id(v)),
                );
            }
        }
        for (b, a) in roots_red.iter().zip(&accs) {
            let x = b.args[0].as_value().ok_or("reduction of a non-tensor")?;
            let ty = g.cty(b.outputs[0]);
            let e = g.eval(&mut inner, x, &idx_names, &acc_mode)?;
            let (_, comb) = red_init(b, ty)?;
            inner.line(&format!("{a} = {comb}({a}, ({ty}){e});"));
        }
        for &v in &to_cache {
            let e = g.eval(&mut inner, v, &idx_names, &acc_mode)?;
            inner.line(&format!("k{}[j * VEC + e] = {e};", g.id(v)));
        }
        for b in &cols_here {
            let x = b.args[0].as_value().ok_or("reduction of a non-tensor")?;
            let o = b.outputs[0];
            let ty = g.cty(o);
            let e = g.eval(&mut inner, x, &idx_names, &acc_mode)?;
            let (_, comb) = red_init(b, ty)?;
            inner.line(&format!(
                "cacc{0}[j * VEC + e] = {comb}(cacc{0}[j * VEC + e], ({ty}){e});",
                g.id(o)
            ));
        }
        for &j in &full_outs {
            let o = region.outputs[j];
            let e = g.eval(&mut inner, o, &idx_names, &acc_mode)?;
            if vec > 1 {
                inner.line(&format!("st(&w{j}[e], {e});"));
            } else {
                inner.line(&format!("st(&out{j}[(idx_t)r * {cols} + c], {e});"));
            }
        }
        body.code.push_str(&inner.code);
        body.line("    }");
        if vec > 1 {
            for &j in &full_outs {
                let t = trace.tensor(region.outputs[j]).ok_or("not a tensor")?;
                let vt = vec_type(vec * t.dtype.itemsize());
                body.line(&format!(
                    "    *reinterpret_cast<{vt}*>(out{j} + (idx_t)r * {cols} + cb) = *reinterpret_cast<const {vt}*>(w{j});"
                ));
            }
        }
        body.line("  }");
        body.line("}");
        // Block reductions; their results are row values of stage s + 1.
        for (b, a) in roots_red.iter().zip(&accs) {
            let o = b.outputs[0];
            let ty = g.cty(o);
            let (init, comb) = red_init(b, ty)?;
            smem_types.insert(ty);
            let sm = smem_name(ty);
            body.line(&format!("BLOCK_REDUCE({ty}, {comb}, {a}, {sm}, {init});"));
            let dt = dtype_of(trace, o).ok_or("dtype")?;
            let rounded = match dt {
                DType::BF16 => format!("rnd_bf16({a})"),
                DType::F16 => format!("rnd_f16({a})"),
                _ => a.clone(),
            };
            let nm = format!("red{}", g.id(o));
            body.line(&format!("const {ty} {nm} = {rounded};"));
            row_memo.insert(format!("{}@{}", o.0, lead_names.join(",")), nm);
        }
    }
    // Reduced outputs: thread 0 of the row.
    if !out_reduced.is_empty() {
        let mut blk = Block::new(body.indent + 1, row_memo.clone());
        for &j in &out_reduced {
            let o = region.outputs[j];
            let e = g.eval(&mut blk, o, &lead_names, &strided)?;
            blk.line(&format!("st(&out{j}[r], {e});"));
        }
        body.line("if (threadIdx.x == 0) {");
        body.code.push_str(&blk.code);
        body.line("}");
    }
    body.line("__syncthreads();");
    // Outputs of other shapes are computed from region inputs alone (the partitioner allows no
    // other): the caller writes them with pointwise kernels.
    let others: Vec<usize> = (0..region.outputs.len())
        .filter(|j| {
            !out_full.contains(j)
                && !out_reduced.contains(j)
                && !column_outs.contains(&region.outputs[*j])
        })
        .collect();
    // With column sums the grid is fixed (each block writes its partials), the rows shared out.
    let blocks = if column_sums.is_empty() {
        rows
    } else {
        column_splits(rows, cols)
    };
    let mut col_write = String::new();
    let mut kps = ps.to_string();
    if !column_sums.is_empty() {
        let sums: Vec<&BoundSymbol> = column_sums.iter().map(|(b, _)| *b).collect();
        let (offsets, _) = column_workspace(g, &sums, blocks, cols);
        kps.push_str(", unsigned char* __restrict__ ws");
        col_write.push_str("  #pragma unroll\n  for (int j = 0; j < PT; ++j) {\n    const idx_t cb = ((idx_t)threadIdx.x + (idx_t)j * blockDim.x) * VEC;\n    #pragma unroll\n    for (int e = 0; e < VEC; ++e) {\n");
        for (b, off) in sums.iter().zip(&offsets) {
            let o = b.outputs[0];
            let ty = g.cty(o);
            let _ = writeln!(
                col_write,
                "      if (cb + e < {cols}) reinterpret_cast<{ty}*>(ws + {off})[(idx_t)blockIdx.x * {cols} + cb + e] = cacc{}[j * VEC + e];",
                g.id(o)
            );
        }
        col_write.push_str("    }\n  }\n");
    }
    let mut decls = String::new();
    for ty in &smem_types {
        let _ = writeln!(decls, "  __shared__ {ty} {}[33];", smem_name(ty));
    }
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void {lb} {name}({kps}) {{\n  const int PT = {per_thread};\n  const int VEC = {vec};\n{decls}{col_decls}  for (idx_t r = blockIdx.x; r < (idx_t){rows}; r += gridDim.x) {{\n{}  }}\n{col_write}}}",
        body.code,
        lb = if vec > 1 && per_thread == 1 && column_sums.is_empty() {
            short_rows_launch_bounds(threads)
        } else {
            rows_launch_bounds(threads)
        },
    );
    Ok((rows, threads as u32, blocks, others))
}

/// The second stage of a columns reduction (`fin`, see [`columns_kernels`]): per block 32
/// columns; its `threads / 32` warps each add every so many of the `splits` partials of
/// `reductions` (at `offsets` in the workspace), then warp 0 adds the warps' sums (a fixed
/// order) and writes the outputs `per_column` computed from them. Returns the blocks that cover
/// the columns.
#[allow(clippy::too_many_arguments)]
fn columns_fin(
    g: &mut Gen,
    source: &mut String,
    wps: &str,
    region: &Region,
    (reductions, offsets): (&[&BoundSymbol], &[usize]),
    (splits, trail): (usize, &[usize]),
    per_column: &[usize],
    threads: usize,
    fin: &str,
) -> Result<usize, GenError> {
    let trace = g.trace;
    let cols: usize = trail.iter().product();
    // Per block 32 columns; its warps each add every so many splits, then warp 0 adds their
    // sums (a fixed order: deterministic) and computes the column's outputs.
    let warps = threads / 32;
    let col_tiles = cols.div_ceil(32).max(1);
    let mut fin_decls = String::new();
    let mut gather = Block::new(2, HashMap::new());
    gather.line("const idx_t cq = cb * 32 + lane;");
    gather.line(&format!(
        "const idx_t cr = cq < {cols} ? cq : {};",
        cols.max(1) - 1
    ));
    let mut body = Block::new(3, HashMap::new());
    body.line("const idx_t c = cq;");
    let cidx = body.index("c", "c", trail);
    for (j, b) in reductions.iter().enumerate() {
        let o = b.outputs[0];
        let ty = g.cty(o);
        let (init, comb) = red_init(b, ty)?;
        let _ = writeln!(fin_decls, "  __shared__ {ty} fs{j}[{warps}][32];");
        let a = format!("part{}", g.id(o));
        gather.line(&format!("{ty} {a} = {init};"));
        gather.line(&format!(
            "for (int s = wy; s < {splits}; s += {warps}) {a} = {comb}({a}, reinterpret_cast<const {ty}*>(ws + {})[(idx_t)s * {cols} + cr]);",
            offsets[j]
        ));
        gather.line(&format!("fs{j}[wy][lane] = {a};"));
        let a = format!("red{}", g.id(o));
        body.line(&format!("{ty} {a} = fs{j}[0][lane];"));
        body.line(&format!(
            "for (int w = 1; w < {warps}; ++w) {a} = {comb}({a}, fs{j}[w][lane]);"
        ));
        let dt = dtype_of(trace, o).ok_or("dtype")?;
        let rounded = match dt {
            DType::BF16 => format!("rnd_bf16({a})"),
            DType::F16 => format!("rnd_f16({a})"),
            _ => a.clone(),
        };
        let nm = format!("rr{}", g.id(o));
        body.line(&format!("const {ty} {nm} = {rounded};"));
        body.memo.insert(format!("{}@{}", o.0, cidx.join(",")), nm);
    }
    for &j in per_column {
        let o = region.outputs[j];
        let e = g.eval(&mut body, o, &cidx, &InputAccess::Strided)?;
        body.line(&format!("st(&out{j}[c], {e});"));
    }
    gather.line("__syncthreads();");
    gather.line(&format!("if (wy == 0 && cq < {cols}) {{"));
    gather.code.push_str(&body.code);
    gather.line("}");
    gather.line("__syncthreads();");
    let body = gather;
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void __launch_bounds__({threads}) {fin}({wps}) {{\n{fin_decls}  const int lane = threadIdx.x & 31, wy = threadIdx.x >> 5;\n  for (idx_t cb = blockIdx.x; cb < (idx_t){col_tiles}; cb += gridDim.x) {{\n{}  }}\n}}",
        body.code
    );
    Ok(col_tiles)
}

/// Where the partials of each column reduction go in the workspace (per reduction `splits` x
/// `cols` values of its compute type, 16-byte aligned), and the workspace's bytes.
fn column_workspace(
    g: &Gen,
    reductions: &[&BoundSymbol],
    splits: usize,
    cols: usize,
) -> (Vec<usize>, usize) {
    let mut offsets = Vec::with_capacity(reductions.len());
    let mut workspace = 0usize;
    for b in reductions {
        let size = match g.cty(b.outputs[0]) {
            "double" | "long long" => 8,
            _ => 4,
        };
        offsets.push(workspace);
        workspace += (splits * cols * size).div_ceil(16) * 16;
    }
    (offsets, workspace)
}

fn smem_name(ty: &str) -> String {
    format!("sm_{}", ty.replace(' ', "_"))
}

/// The identity and the combining function of a reduction in type `ty`.
fn red_init(b: &BoundSymbol, ty: &str) -> Result<(String, &'static str), GenError> {
    let Op::Prim(op) = b.op else {
        return Err("not a reduction".into());
    };
    let float = ty == "float" || ty == "double";
    Ok(match op {
        PrimOp::Sum => (format!("(({ty})0)"), "red_sum"),
        PrimOp::Prod => (format!("(({ty})1)"), "red_prod"),
        PrimOp::Amax => (
            if float {
                float_lit(f64::NEG_INFINITY, ty)
            } else if ty == "int" {
                "(-2147483647 - 1)".to_string()
            } else {
                "(-9223372036854775807LL - 1)".to_string()
            },
            "red_max",
        ),
        PrimOp::Amin => (
            if float {
                float_lit(f64::INFINITY, ty)
            } else if ty == "int" {
                "2147483647".to_string()
            } else {
                "9223372036854775807LL".to_string()
            },
            "red_min",
        ),
        other => return Err(format!("prims.{} is not a fusible reduction", other.name())),
    })
}
