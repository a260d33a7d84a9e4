//! The cross-entropy executor: `ltorch.cross_entropy` and `ltorch.cross_entropy_backward` on CUDA
//! as fused kernels that never store the softmax (feature `cuda`).
//!
//! - Forward: one block per row computes the row's log-sum-exp online (running max and sum of
//!   exponentials, the row read once) and the row's loss; for the `"mean"` and `"sum"`
//!   reductions a one-block kernel then adds the rows' losses in a fixed order (deterministic)
//!   and counts the rows not ignored.
//! - Backward: one block per row reads the row once (kept in registers when it fits, up to
//!   16 16-byte chunks per thread), reduces it to its max and sum, and writes
//!   `(softmax - onehot(target)) * w`, `w` the row's share of the loss's gradient (divided by the
//!   number of counted rows for the mean, counted by a one-block kernel first; 0 for ignored rows).
//! - Values are read and written in the input's dtype, math in float32 (float64 for float64).
//!   Rows whose stride is 1 and whose length and start are 16-byte aligned take 16-byte vector
//!   loads and stores; other layouts are read element by element through their strides.
//! - A target outside `[0, classes)` (and not `ignore_index`) gives a NaN loss; eager PyTorch
//!   stops with a device-side assertion instead.

use crate::convert;
use crate::cuda::{cuda_index, current_stream, enter_device, launch, Module};
use crate::executor::{Args, Executor, Kernel, KernelError, Outputs, RtValue};
use crate::torch_executor::tensor;
use crate::{Error, Result};
use std::sync::Arc;
use tch::Tensor;
use thunder_ir::ops::torch::TorchOp;
use thunder_ir::{Attr, BoundSymbol, DType, Op, Trace};

/// At most this many threads per row.
const MAX_THREADS: usize = 512;
/// Rows of at most this many chunks per thread stay in registers between the two passes of the
/// backward; longer rows are read twice.
const MAX_CACHED_CHUNKS: usize = 16;

/// The fused cross-entropy executor. Put it before the fusion and torch executors:
/// `ExecutionPlan::compile(&trace, &[&CrossEntropyExecutor, &FusionExecutor, &torch])`.
#[derive(Debug, Default, Clone, Copy)]
pub struct CrossEntropyExecutor;

/// How the kernels of one (dtype, classes) pair are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    dtype: DType,
    classes: usize,
}

impl Shape {
    /// Elements per 16-byte access.
    fn vec(&self) -> usize {
        16 / self.dtype.itemsize()
    }
    fn threads(&self) -> usize {
        let per = self.classes.div_ceil(self.vec()).max(1);
        per.div_ceil(32).clamp(1, MAX_THREADS / 32) * 32
    }
    /// Chunks per thread: (scalar variant, vector variant).
    fn chunks(&self) -> (usize, usize) {
        let t = self.threads();
        (
            self.classes.div_ceil(t).max(1),
            (self.classes / self.vec()).div_ceil(t).max(1),
        )
    }
    fn acc(&self) -> &'static str {
        if self.dtype == DType::F64 {
            "double"
        } else {
            "float"
        }
    }
}

/// The names of the kernels in [`source`], in the order the executor looks them up.
const NAMES: [&str; 6] = [
    "xent_fwd_s",
    "xent_fwd_v",
    "xent_finish",
    "xent_count",
    "xent_bwd_s",
    "xent_bwd_v",
];

/// The CUDA C++ of the cross-entropy kernels for rows of `classes` values of `dtype` (float16,
/// bfloat16, float32 or float64).
pub fn source(dtype: DType, classes: usize) -> std::result::Result<String, super::SourceError> {
    let t = crate::fusion::codegen::float_storage_type(dtype)
        .ok_or(super::SourceError::CrossEntropyDtype { dtype })?;
    let sh = Shape { dtype, classes };
    let (ch_s, ch_v) = sh.chunks();
    let mut src = String::from(crate::fusion::codegen::PRELUDE);
    src.push_str(&format!(
        r#"
typedef {t} T;
typedef {acc} ACC;
#define VECW {vec}
#define THREADS {threads}
#define NCLS {classes}LL
#define NPACK (NCLS / VECW)
#define CH_S {ch_s}
#define CH_V {ch_v}
#define CACHE_S {cache_s}
#define CACHE_V {cache_v}
#define ROW_KERNEL {lb}
#define FAST_EXP {fast}
"#,
        acc = sh.acc(),
        vec = sh.vec(),
        threads = sh.threads(),
        cache_s = (ch_s <= MAX_CACHED_CHUNKS) as u8,
        cache_v = (ch_v <= MAX_CACHED_CHUNKS) as u8,
        lb = crate::fusion::codegen::rows_launch_bounds(sh.threads()),
        fast = dtype.is_low_precision_float() as u8,
    ));
    src.push_str(KERNELS);
    Ok(src)
}

const KERNELS: &str = r#"
// 16 bytes of a row, kept packed in registers (4 registers for 8 bf16 values).
typedef uint4 Pack;
__device__ __forceinline__ ACC neg_inf() { return -(ACC)__int_as_float(0x7f800000); }
__device__ __forceinline__ ACC qnan() { return (ACC)__int_as_float(0x7fffffff); }
// float32 math stays float32 (exp(float) could resolve to the double routine). 16-bit inputs
// take the hardware exp2 (__expf: a few ulp of float32, far below their own rounding); float32
// inputs the precise expf.
#if FAST_EXP
__device__ __forceinline__ float ex(float x) { return __expf(x); }
#else
__device__ __forceinline__ float ex(float x) { return expf(x); }
#endif
__device__ __forceinline__ float mx(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double mx(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ double ex(double x) { return exp(x); }
__device__ __forceinline__ float lg(float x) { return logf(x); }
__device__ __forceinline__ double lg(double x) { return log(x); }
// (m, s): running max and sum of exp(x - m). The max ignores NaN (fmax), but a NaN value makes
// its exp, and so the sum and the loss, NaN. While every value so far is -inf, (m, s) stays
// (-inf, 0): such a row's log-sum-exp is -inf and its loss NaN, as PyTorch's.
__device__ __forceinline__ void lse_combine(ACC& m, ACC& s, ACC m2, ACC s2) {
  ACC mn = mx(m, m2);
  if (mn == neg_inf()) return;
  s = s * ex(m - mn) + s2 * ex(m2 - mn);
  m = mn;
}
template <int N> __device__ __forceinline__ void lse_add(ACC& m, ACC& s, const ACC* v) {
  ACC mn = m;
#pragma unroll
  for (int k = 0; k < N; ++k) mn = mx(mn, v[k]);
  if (mn == neg_inf()) return;
  ACC a = 0;
#pragma unroll
  for (int k = 0; k < N; ++k) a += ex(v[k] - mn);
  s = s * ex(m - mn) + a;
  m = mn;
}
// The block's (max, sum): every thread gets it.
__device__ __forceinline__ void block_lse(ACC& m, ACC& s) {
  __shared__ ACC sm[32], ss[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    ACC m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    lse_combine(m, s, m2, s2);
  }
  int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  if (l == 0) { sm[w] = m; ss[w] = s; }
  __syncthreads();
  if (w == 0) {
    int nw = THREADS / 32;
    m = l < nw ? sm[l] : neg_inf();
    s = l < nw ? ss[l] : (ACC)0;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      ACC m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
      lse_combine(m, s, m2, s2);
    }
    if (l == 0) { sm[0] = m; ss[0] = s; }
  }
  __syncthreads();
  m = sm[0];
  s = ss[0];
}
__device__ __forceinline__ void unpack(const Pack& q, ACC* v) {
#pragma unroll
  for (int k = 0; k < VECW; ++k) v[k] = (ACC)tc(reinterpret_cast<const T*>(&q)[k]);
}
// The row's loss from its (max, sum): lse - x[target], 0 for an ignored row.
__device__ __forceinline__ ACC row_loss(ACC m, ACC s, long long t, long long ignore, const T* row, long long sx1) {
  if (t == ignore) return (ACC)0;
  if (t < 0 || t >= NCLS) return qnan();
  return m + lg(s) - (ACC)tc(row[t * sx1]);
}
// This thread's (max, sum) of a row read with 16-byte loads, all of a group issued before any
// is used (several loads in flight per thread).
#define GROUP 4
__device__ __forceinline__ void load_lse(const Pack* p, ACC& m, ACC& s) {
  for (long long i0 = threadIdx.x; i0 < NPACK; i0 += (long long)GROUP * THREADS) {
    Pack q[GROUP];
#pragma unroll
    for (int k = 0; k < GROUP; ++k) {
      long long i = i0 + (long long)k * THREADS;
      if (i < NPACK) q[k] = p[i];
    }
#pragma unroll
    for (int k = 0; k < GROUP; ++k) {
      long long i = i0 + (long long)k * THREADS;
      if (i < NPACK) {
        ACC v[VECW];
        unpack(q[k], v);
        lse_add<VECW>(m, s, v);
      }
    }
  }
}
// Forward, element by element through strides. none_mode: write the row's loss to none_out
// (reduction "none"), else to rows_out for xent_finish.
extern "C" __global__ void ROW_KERNEL xent_fwd_s(
    const T* x, long long sx0, long long sx1, const long long* tgt, long long st0, long long ignore,
    ACC* rows_out, T* none_out, long long none_mode) {
  long long r = blockIdx.x;
  const T* row = x + r * sx0;
  ACC m = neg_inf(), s = 0;
  for (long long j = threadIdx.x; j < NCLS; j += THREADS) {
    ACC v = (ACC)tc(row[j * sx1]);
    lse_add<1>(m, s, &v);
  }
  block_lse(m, s);
  if (threadIdx.x == 0) {
    ACC loss = row_loss(m, s, tgt[r * st0], ignore, row, sx1);
    if (none_mode) st(none_out + r, loss); else rows_out[r] = loss;
  }
}
// Forward with 16-byte loads (stride 1, aligned rows).
extern "C" __global__ void ROW_KERNEL xent_fwd_v(
    const T* x, long long sx0, long long sx1, const long long* tgt, long long st0, long long ignore,
    ACC* rows_out, T* none_out, long long none_mode) {
  long long r = blockIdx.x;
  const T* row = x + r * sx0;
  const Pack* p = (const Pack*)row;
  ACC m = neg_inf(), s = 0;
  load_lse(p, m, s);
  block_lse(m, s);
  if (threadIdx.x == 0) {
    ACC loss = row_loss(m, s, tgt[r * st0], ignore, row, 1);
    if (none_mode) st(none_out + r, loss); else rows_out[r] = loss;
  }
}
// One block: the sum of the rows' losses (divided by the counted rows for the mean), in a fixed
// order.
extern "C" __global__ void xent_finish(const ACC* rows_in, const long long* tgt, long long st0,
                                       long long rows, long long ignore, long long mean, T* out) {
  __shared__ ACC sm[33];
  ACC s = 0, c = 0;
  for (long long i = threadIdx.x; i < rows; i += blockDim.x) {
    s += rows_in[i];
    c += tgt[i * st0] != ignore ? (ACC)1 : (ACC)0;
  }
  BLOCK_REDUCE(ACC, red_sum, s, sm, (ACC)0);
  BLOCK_REDUCE(ACC, red_sum, c, sm, (ACC)0);
  if (threadIdx.x == 0) st(out, mean ? s / c : s);
}
// One block: the number of rows not ignored.
extern "C" __global__ void xent_count(const long long* tgt, long long st0, long long rows,
                                      long long ignore, ACC* out) {
  __shared__ ACC sm[33];
  ACC c = 0;
  for (long long i = threadIdx.x; i < rows; i += blockDim.x) c += tgt[i * st0] != ignore ? (ACC)1 : (ACC)0;
  BLOCK_REDUCE(ACC, red_sum, c, sm, (ACC)0);
  if (threadIdx.x == 0) out[0] = c;
}
// The row's weight: its share of the loss's gradient. mode: 0 mean, 1 sum, 2 none.
__device__ __forceinline__ ACC row_weight(const T* g, long long sg, long long r, long long t,
                                          long long ignore, const ACC* count, long long mode) {
  if (t == ignore) return (ACC)0;
  ACC gv = (ACC)tc(g[mode == 2 ? r * sg : 0]);
  return mode == 0 ? gv / count[0] : gv;
}
__device__ __forceinline__ ACC grad_of(ACC v, ACC m, ACC inv, int j, int t, ACC w) {
  return (ex(v - m) * inv - (j == t ? (ACC)1 : (ACC)0)) * w;
}
// Backward, element by element; out is contiguous [rows, NCLS].
extern "C" __global__ void ROW_KERNEL xent_bwd_s(
    const T* g, long long sg, const T* x, long long sx0, long long sx1, const long long* tgt,
    long long st0, long long ignore, const ACC* count, long long mode, T* out) {
  long long r = blockIdx.x;
  const T* row = x + r * sx0;
  ACC m = neg_inf(), s = 0;
#if CACHE_S
  ACC cache[CH_S];
#pragma unroll
  for (int k = 0; k < CH_S; ++k) {
    long long j = threadIdx.x + (long long)k * THREADS;
    cache[k] = j < NCLS ? (ACC)tc(row[j * sx1]) : (ACC)0;
    if (j < NCLS) lse_add<1>(m, s, &cache[k]);
  }
#else
  for (long long j = threadIdx.x; j < NCLS; j += THREADS) {
    ACC v = (ACC)tc(row[j * sx1]);
    lse_add<1>(m, s, &v);
  }
#endif
  block_lse(m, s);
  long long t = tgt[r * st0];
  ACC w = row_weight(g, sg, r, t, ignore, count, mode);
  ACC inv = (ACC)1 / s;
  // The target's column as an int (NCLS < 2^31); -1 when it is no column.
  int ti = (t >= 0 && t < NCLS) ? (int)t : -1;
  T* o = out + r * NCLS;
#if CACHE_S
#pragma unroll
  for (int k = 0; k < CH_S; ++k) {
    long long j = threadIdx.x + (long long)k * THREADS;
    if (j < NCLS) st(o + j, grad_of(cache[k], m, inv, (int)j, ti, w));
  }
#else
  for (long long j = threadIdx.x; j < NCLS; j += THREADS)
    st(o + j, grad_of((ACC)tc(row[j * sx1]), m, inv, (int)j, ti, w));
#endif
}
// Backward with 16-byte loads and stores.
extern "C" __global__ void ROW_KERNEL xent_bwd_v(
    const T* g, long long sg, const T* x, long long sx0, long long sx1, const long long* tgt,
    long long st0, long long ignore, const ACC* count, long long mode, T* out) {
  long long r = blockIdx.x;
  const Pack* p = (const Pack*)(x + r * sx0);
  ACC m = neg_inf(), s = 0;
#if CACHE_V
  Pack cache[CH_V];
#pragma unroll
  for (int k = 0; k < CH_V; ++k) {
    long long i = threadIdx.x + (long long)k * THREADS;
    if (i < NPACK) cache[k] = p[i];
  }
#pragma unroll
  for (int k = 0; k < CH_V; ++k) {
    long long i = threadIdx.x + (long long)k * THREADS;
    if (i < NPACK) {
      ACC v[VECW];
      unpack(cache[k], v);
      lse_add<VECW>(m, s, v);
    }
  }
#else
  load_lse(p, m, s);
#endif
  block_lse(m, s);
  long long t = tgt[r * st0];
  ACC w = row_weight(g, sg, r, t, ignore, count, mode);
  ACC inv = (ACC)1 / s;
  // The target's column as an int (NCLS < 2^31); -1 when it is no column.
  int ti = (t >= 0 && t < NCLS) ? (int)t : -1;
  Pack* o = (Pack*)(out + r * NCLS);
#if CACHE_V
#pragma unroll
  for (int k = 0; k < CH_V; ++k) {
    long long i = threadIdx.x + (long long)k * THREADS;
    if (i < NPACK) {
      ACC v[VECW];
      unpack(cache[k], v);
      Pack q;
#pragma unroll
      for (int e = 0; e < VECW; ++e) st(reinterpret_cast<T*>(&q) + e, grad_of(v[e], m, inv, (int)(i * VECW + e), ti, w));
      o[i] = q;
    }
  }
#else
  for (long long i = threadIdx.x; i < NPACK; i += THREADS) {
    ACC v[VECW];
    unpack(p[i], v);
    Pack q;
#pragma unroll
    for (int e = 0; e < VECW; ++e) st(reinterpret_cast<T*>(&q) + e, grad_of(v[e], m, inv, (int)(i * VECW + e), ti, w));
    o[i] = q;
  }
#endif
}
"#;

/// What a claimed op needs at run time.
struct Compiled {
    shape: Shape,
    backward: bool,
    ignore_index: i64,
    /// 0 mean, 1 sum, 2 none.
    mode: i64,
    /// The input is `[C]` (one row, a 0-d loss or target).
    unbatched: bool,
    module: Module,
}

fn attr_int(a: Option<&Attr>) -> Option<i64> {
    match a {
        Some(Attr::Int(i)) => Some(*i),
        _ => None,
    }
}

fn reduction_mode(a: Option<&Attr>) -> Option<i64> {
    match a {
        Some(Attr::Str(s)) => match s.as_str() {
            "mean" => Some(0),
            "sum" => Some(1),
            "none" => Some(2),
            _ => None,
        },
        _ => None,
    }
}

/// `(backward, input dtype, classes, unbatched, ignore_index, mode)` of a call this executor
/// runs, `None` for anything else.
fn claimable(trace: &Trace, bsym: &BoundSymbol) -> Option<(bool, DType, usize, bool, i64, i64)> {
    let backward = match bsym.op {
        Op::Torch(TorchOp::CrossEntropy) => false,
        Op::Torch(TorchOp::CrossEntropyBackward) => true,
        _ => return None,
    };
    if !backward && !matches!(bsym.attrs.get(2), Some(Attr::Float(f)) if *f == 0.0) {
        return None;
    }
    let ins = bsym.inputs();
    let off = backward as usize;
    let x = trace.tensor(*ins.get(off)?)?;
    let t = trace.tensor(*ins.get(off + 1)?)?;
    let on_cuda = ins
        .iter()
        .all(|&v| trace.tensor(v).is_some_and(|m| m.device == x.device));
    if !x.device.is_cuda()
        || !on_cuda
        || t.dtype != DType::I64
        || crate::fusion::codegen::float_storage_type(x.dtype).is_none()
    {
        return None;
    }
    let classes = match x.rank() {
        2 => x.shape.size(1),
        1 => x.shape.size(0),
        _ => return None,
    };
    if classes == 0 || classes > i32::MAX as usize {
        return None;
    }
    Some((
        backward,
        x.dtype,
        classes,
        x.rank() == 1,
        attr_int(bsym.attrs.first())?,
        reduction_mode(bsym.attrs.get(1))?,
    ))
}

impl Executor for CrossEntropyExecutor {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn claims(&self, trace: &Trace, bsym: &BoundSymbol) -> bool {
        claimable(trace, bsym).is_some()
    }

    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> Result<Kernel> {
        let statement = || thunder_ir::printer::statement(trace, bsym);
        let (backward, dtype, classes, unbatched, ignore_index, mode) = claimable(trace, bsym)
            .ok_or_else(|| Error::Compile {
                executor: "cross-entropy",
                statement: statement(),
                message: "not a cross entropy this executor runs (CUDA, floating [N, C] or [C] input, int64 target, no label smoothing)".into(),
            })?;
        let src = source(dtype, classes).map_err(|m| Error::Compile {
            executor: "cross-entropy",
            statement: statement(),
            message: m.to_string(),
        })?;
        let module = Module::new(src, NAMES.iter().map(|s| s.to_string()).collect());
        if let Some(thunder_ir::Device::Cuda(d)) = trace.tensor(bsym.outputs[0]).map(|t| t.device) {
            module.prefetch(d as i32);
        }
        let c = Arc::new(Compiled {
            shape: Shape { dtype, classes },
            backward,
            ignore_index,
            mode,
            unbatched,
            module,
        });
        Ok(Box::new(move |args: &Args<'_>| c.run(args)))
    }
}

impl Compiled {
    fn run(&self, args: &Args<'_>) -> std::result::Result<Outputs, KernelError> {
        let off = self.backward as usize;
        let x = tensor(args, off)?;
        let tgt = tensor(args, off + 1)?;
        let dev = cuda_index(x, "the cross entropy's input")?;
        if cuda_index(tgt, "the cross entropy's target")? != dev {
            return Err(KernelError(
                "the cross entropy's input and target are on different devices".into(),
            ));
        }
        let kind = convert::kind(self.shape.dtype);
        let acc = if self.shape.dtype == DType::F64 {
            tch::Kind::Double
        } else {
            tch::Kind::Float
        };
        let on = tch::Device::Cuda(dev as usize);
        let (rows, sx0, sx1, st0) = if self.unbatched {
            (1usize, 0i64, x.stride()[0], 0i64)
        } else {
            let s = x.stride();
            (x.size()[0] as usize, s[0], s[1], tgt.stride()[0])
        };
        let c = self.shape.classes as i64;
        let w = self.shape.vec() as i64;
        let vector = sx1 == 1
            && c % w == 0
            && (x.data_ptr() as usize) % 16 == 0
            && (sx0 * self.shape.dtype.itemsize() as i64) % 16 == 0;
        enter_device(dev)?;
        let f = self.module.functions(dev)?;
        let stream = current_stream(dev)?;
        let threads = self.shape.threads() as u32;
        let grid = rows as u32;
        let ptr = |t: &Tensor| t.data_ptr() as u64;
        let mut outs = Outputs::new();
        if !self.backward {
            let none = self.mode == 2;
            let out_shape: Vec<i64> = if none && !self.unbatched {
                vec![rows as i64]
            } else {
                vec![]
            };
            let out = Tensor::f_empty(out_shape.as_slice(), (kind, on))?;
            let ws = Tensor::f_empty([if none { 0 } else { rows as i64 }], (acc, on))?;
            if rows > 0 {
                let (fi, name) = if vector { (1, NAMES[1]) } else { (0, NAMES[0]) };
                let mut p = [
                    ptr(x),
                    sx0 as u64,
                    sx1 as u64,
                    ptr(tgt),
                    st0 as u64,
                    self.ignore_index as u64,
                    ptr(&ws),
                    ptr(&out),
                    none as u64,
                ];
                // SAFETY: the parameters of xent_fwd_*, live tensors of the dtypes the source
                // was generated for, queued on PyTorch's stream.
                unsafe { launch(f[fi], grid, threads, stream, &mut p, name) }?;
            }
            if !none {
                let mut p = [
                    ptr(&ws),
                    ptr(tgt),
                    st0 as u64,
                    rows as u64,
                    self.ignore_index as u64,
                    (self.mode == 0) as u64,
                    ptr(&out),
                ];
                // SAFETY: as above, xent_finish's parameters.
                unsafe { launch(f[2], 1, 1024, stream, &mut p, NAMES[2]) }?;
            }
            drop(ws);
            outs.push(RtValue::Tensor(out));
            return Ok(outs);
        }
        let g = tensor(args, 0)?;
        if cuda_index(g, "the loss's gradient")? != dev {
            return Err(KernelError(
                "the loss's gradient and the input are on different devices".into(),
            ));
        }
        if g.kind() != kind {
            return Err(KernelError(format!(
                "the loss's gradient is {:?}, the input {:?}",
                g.kind(),
                kind
            )));
        }
        let sg = if self.mode == 2 && !self.unbatched {
            g.stride()[0]
        } else {
            0
        };
        let out = Tensor::f_empty(x.size().as_slice(), (kind, on))?;
        let count = Tensor::f_empty([1], (acc, on))?;
        if rows > 0 {
            if self.mode == 0 {
                let mut p = [
                    ptr(tgt),
                    st0 as u64,
                    rows as u64,
                    self.ignore_index as u64,
                    ptr(&count),
                ];
                // SAFETY: xent_count's parameters, live tensors.
                unsafe { launch(f[3], 1, 1024, stream, &mut p, NAMES[3]) }?;
            }
            let (fi, name) = if vector { (5, NAMES[5]) } else { (4, NAMES[4]) };
            let mut p = [
                ptr(g),
                sg as u64,
                ptr(x),
                sx0 as u64,
                sx1 as u64,
                ptr(tgt),
                st0 as u64,
                self.ignore_index as u64,
                ptr(&count),
                self.mode as u64,
                ptr(&out),
            ];
            // SAFETY: xent_bwd_*'s parameters, live tensors of the source's dtypes; `out` is
            // contiguous, as the kernel writes it.
            unsafe { launch(f[fi], grid, threads, stream, &mut p, name) }?;
        }
        drop(count);
        outs.push(RtValue::Tensor(out));
        Ok(outs)
    }
}
