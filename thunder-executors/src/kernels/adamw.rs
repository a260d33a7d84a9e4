//! The AdamW executor: `ltorch.adamw` on CUDA as one multi-tensor kernel (feature `cuda`).
//!
//! - One launch updates up to [`MAX_TENSORS`] parameters of one dtype: the kernel's parameter
//!   block carries a table of their pointers (parameter, gradient, moments, and where each result
//!   goes), their sizes and where each one's chunks start. Block `b` finds its parameter by a
//!   binary search over the chunk starts and updates one chunk of [`CHUNK_VECTORS`] 16-byte
//!   vectors per thread-block pass: parameter, gradient and both moments read once with 16-byte
//!   loads, the three results written once. Nothing is copied to the device first, so a launch is
//!   one `cuLaunchKernel` and no host synchronization.
//! - The step number is read on the device (a 0-dim float32 tensor), so a new step reuses the
//!   same compiled plan. Math in float32 (float64 for float64 parameters), in the order of
//!   PyTorch's fused kernel: `p -= lr * wd * p; m = b1 * m + (1 - b1) * g;
//!   v = b2 * v + (1 - b2) * g * g; p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)`.
//! - With `inplace=True` (donated buffers) the results go into the parameter and moment buffers
//!   themselves, which the op then returns; otherwise into new tensors. Noncontiguous tensors go
//!   through contiguous copies (copied back when donated). Parameters whose buffers are not
//!   16-byte aligned take an element-by-element path.

use crate::convert;
use crate::cuda::{cuda_index, current_stream, enter_device, launch_raw, Module};
use crate::executor::{Args, Executor, Kernel, KernelError, Outputs, RtValue};
use crate::torch_executor::{contiguous_copy, tensor, tensor_list};
use crate::{Error, Result};
use std::ffi::c_void;
use std::sync::Arc;
use tch::Tensor;
use thunder_ir::ops::torch::TorchOp;
use thunder_ir::{Arg, Attr, BoundSymbol, DType, Op, Trace};

/// Parameters per launch: the table fills 3.3 KB of the 4 KB kernel parameter block.
pub const MAX_TENSORS: usize = 48;
/// Threads per block.
const THREADS: usize = 256;
/// 16-byte vectors each thread handles per chunk: a chunk is `THREADS * CHUNK_VECTORS` vectors
/// (8192 bf16 values).
const CHUNK_VECTORS: usize = 4;

/// The multi-tensor AdamW executor. Put it before the fusion and torch executors:
/// `ExecutionPlan::compile(&trace, &[&AdamwExecutor, &FusionExecutor, &torch])`.
#[derive(Debug, Default, Clone, Copy)]
pub struct AdamwExecutor;

/// The kernel's table, laid out as `struct Table` in [`source`].
#[repr(C)]
struct Table {
    /// Per role (parameter, gradient, first moment, second moment, then the three results) and
    /// parameter: the address.
    ptr: [[u64; MAX_TENSORS]; 7],
    numel: [i64; MAX_TENSORS],
    /// The first block of each parameter's chunks.
    chunk_start: [i32; MAX_TENSORS + 1],
}

/// Elements per chunk for parameters of `dtype`.
fn chunk(dtype: DType) -> usize {
    THREADS * CHUNK_VECTORS * (16 / dtype.itemsize())
}

/// The CUDA C++ of the AdamW kernel for parameters of `dtype` (float16, bfloat16, float32 or
/// float64).
pub fn source(dtype: DType) -> std::result::Result<String, super::SourceError> {
    let t = crate::fusion::codegen::float_storage_type(dtype)
        .ok_or(super::SourceError::AdamwDtype { dtype })?;
    let mut src = String::from(crate::fusion::codegen::PRELUDE);
    src.push_str(&format!(
        r#"
typedef {t} T;
typedef {acc} ACC;
#define VECW {vec}
#define THREADS {THREADS}
#define CHUNK {chunk}LL
#define MAXT {MAX_TENSORS}
"#,
        acc = if dtype == DType::F64 {
            "double"
        } else {
            "float"
        },
        vec = 16 / dtype.itemsize(),
        chunk = chunk(dtype),
    ));
    src.push_str(KERNEL);
    Ok(src)
}

const KERNEL: &str = r#"
struct Table {
  unsigned long long ptr[7][MAXT];
  long long numel[MAXT];
  int chunk_start[MAXT + 1];
};
typedef uint4 Pack;
struct Hyper { ACC lr_wd, b1, b2, eps, step_size, bc2_sqrt; };
__device__ __forceinline__ void update(T& p, T g, T& m, T& v, const Hyper& h) {
  ACC pf = (ACC)tc(p), gf = (ACC)tc(g), mf = (ACC)tc(m), vf = (ACC)tc(v);
  pf -= h.lr_wd * pf;
  mf = h.b1 * mf + ((ACC)1 - h.b1) * gf;
  vf = h.b2 * vf + ((ACC)1 - h.b2) * gf * gf;
  ACC denom = sqrt(vf) / h.bc2_sqrt + h.eps;
  pf -= h.step_size * mf / denom;
  st(&p, pf);
  st(&m, mf);
  st(&v, vf);
}
extern "C" __global__ void __launch_bounds__(THREADS) adamw_step(
    const Table tb, int nt, const float* step, double lr, double beta1, double beta2, double eps,
    double wd) {
  int b = blockIdx.x;
  int lo = 0, hi = nt - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) >> 1;
    if (tb.chunk_start[mid] <= b) lo = mid; else hi = mid - 1;
  }
  const int i = lo;
  const long long n = tb.numel[i];
  const long long start = (long long)(b - tb.chunk_start[i]) * CHUNK;
  const long long end = min(start + CHUNK, n);
  const T* p = (const T*)tb.ptr[0][i];
  const T* g = (const T*)tb.ptr[1][i];
  const T* m = (const T*)tb.ptr[2][i];
  const T* v = (const T*)tb.ptr[3][i];
  T* po = (T*)tb.ptr[4][i];
  T* mo = (T*)tb.ptr[5][i];
  T* vo = (T*)tb.ptr[6][i];
  Hyper h;
  ACC s = (ACC)*step;
  h.b1 = (ACC)beta1;
  h.b2 = (ACC)beta2;
  h.eps = (ACC)eps;
  h.lr_wd = (ACC)lr * (ACC)wd;
  h.step_size = (ACC)lr / ((ACC)1 - pow(h.b1, s));
  h.bc2_sqrt = sqrt((ACC)1 - pow(h.b2, s));
  unsigned long long any = 0;
#pragma unroll
  for (int r = 0; r < 7; ++r) any |= tb.ptr[r][i];
  long long vend = start;
  if ((any & 15ULL) == 0) {
    vend = start + (end - start) / VECW * VECW;
#pragma unroll 2
    for (long long j = start + (long long)threadIdx.x * VECW; j < vend; j += (long long)THREADS * VECW) {
      Pack qp = *(const Pack*)(p + j), qg = *(const Pack*)(g + j);
      Pack qm = *(const Pack*)(m + j), qv = *(const Pack*)(v + j);
      T* ep = reinterpret_cast<T*>(&qp);
      const T* eg = reinterpret_cast<const T*>(&qg);
      T* em = reinterpret_cast<T*>(&qm);
      T* ev = reinterpret_cast<T*>(&qv);
#pragma unroll
      for (int k = 0; k < VECW; ++k) update(ep[k], eg[k], em[k], ev[k], h);
      *(Pack*)(po + j) = qp;
      *(Pack*)(mo + j) = qm;
      *(Pack*)(vo + j) = qv;
    }
  }
  for (long long j = vend + threadIdx.x; j < end; j += THREADS) {
    T pe = p[j], me = m[j], ve = v[j];
    update(pe, g[j], me, ve, h);
    po[j] = pe;
    mo[j] = me;
    vo[j] = ve;
  }
}
"#;

/// What a claimed op needs at run time.
struct Compiled {
    /// Hyperparameters: lr, beta1, beta2, eps, weight_decay.
    hyper: [f64; 5],
    inplace: bool,
    /// One module per parameter dtype of the op, with that dtype.
    modules: Vec<(DType, Module)>,
    /// Each parameter's dtype.
    dtypes: Vec<DType>,
}

/// `(parameter dtypes, hyperparameters, inplace)` of an `adamw` this executor runs.
fn claimable(trace: &Trace, bsym: &BoundSymbol) -> Option<(Vec<DType>, [f64; 5], bool)> {
    if bsym.op != Op::Torch(TorchOp::Adamw) {
        return None;
    }
    let params = match bsym.args.first() {
        Some(Arg::List(l)) => l,
        _ => return None,
    };
    let step = match bsym.args.get(4) {
        Some(Arg::Value(v)) => trace.tensor(*v)?,
        _ => return None,
    };
    if !step.device.is_cuda() || step.dtype != DType::F32 {
        return None;
    }
    let mut dtypes = Vec::with_capacity(params.len());
    for &p in params {
        let m = trace.tensor(p)?;
        crate::fusion::codegen::float_storage_type(m.dtype)?;
        // Chunk indices are 32-bit in the table.
        if m.shape.numel() / chunk(m.dtype) >= i32::MAX as usize / 2 {
            return None;
        }
        dtypes.push(m.dtype);
    }
    let mut hyper = [0.0; 5];
    for (k, h) in hyper.iter_mut().enumerate() {
        *h = match bsym.attrs.get(k) {
            Some(Attr::Float(f)) => *f,
            _ => return None,
        };
    }
    let inplace = match bsym.attrs.get(5) {
        Some(Attr::Bool(b)) => *b,
        _ => return None,
    };
    Some((dtypes, hyper, inplace))
}

impl Executor for AdamwExecutor {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn claims(&self, trace: &Trace, bsym: &BoundSymbol) -> bool {
        claimable(trace, bsym).is_some()
    }

    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> Result<Kernel> {
        let err = |message: String| Error::Compile {
            executor: "adamw",
            statement: thunder_ir::printer::statement(trace, bsym),
            message,
        };
        let (dtypes, hyper, inplace) = claimable(trace, bsym).ok_or_else(|| {
            err(
                "not an AdamW step this executor runs (CUDA, floating parameters, a float32 step)"
                    .into(),
            )
        })?;
        let mut modules: Vec<(DType, Module)> = Vec::new();
        for &d in &dtypes {
            if !modules.iter().any(|(m, _)| *m == d) {
                modules.push((
                    d,
                    Module::new(
                        source(d).map_err(|e| err(e.to_string()))?,
                        vec!["adamw_step".into()],
                    ),
                ));
            }
        }
        let c = Arc::new(Compiled {
            hyper,
            inplace,
            modules,
            dtypes,
        });
        Ok(Box::new(move |args: &Args<'_>| c.run(args)))
    }
}

impl Compiled {
    fn run(&self, args: &Args<'_>) -> std::result::Result<Outputs, KernelError> {
        let lists = [
            tensor_list(args, 0)?,
            tensor_list(args, 1)?,
            tensor_list(args, 2)?,
            tensor_list(args, 3)?,
        ];
        let step = tensor(args, 4)?;
        let n = self.dtypes.len();
        if lists.iter().any(|l| l.len() != n) {
            return Err(KernelError(format!(
                "expected {n} tensors in each list (a plan bug)"
            )));
        }
        let dev = cuda_index(step, "the AdamW step count")?;
        for (k, l) in lists.iter().enumerate() {
            for (i, t) in l.iter().enumerate() {
                if cuda_index(t, "an AdamW operand")? != dev {
                    return Err(KernelError(format!(
                        "operand {k}, tensor {i} is on another device than the step count (cuda:{dev})"
                    )));
                }
                if t.kind() != convert::kind(self.dtypes[i]) {
                    return Err(KernelError(format!(
                        "operand {k}, tensor {i} is {:?}, compiled for {}",
                        t.kind(),
                        self.dtypes[i]
                    )));
                }
            }
        }
        // Inputs as the kernel reads them (contiguous), and where the results go.
        let contiguous = |t: &Tensor| -> std::result::Result<Tensor, KernelError> {
            if t.is_contiguous() {
                Ok(t.shallow_clone())
            } else {
                contiguous_copy(t)
            }
        };
        let ins: Vec<Vec<Tensor>> = lists
            .iter()
            .map(|l| l.iter().map(|t| contiguous(t)).collect())
            .collect::<std::result::Result<_, _>>()?;
        let outs: Vec<Vec<Tensor>> = [0usize, 2, 3]
            .iter()
            .map(|&k| {
                ins[k]
                    .iter()
                    .map(|t| {
                        if self.inplace {
                            Ok(t.shallow_clone())
                        } else {
                            Ok(Tensor::f_empty(t.size(), (t.kind(), t.device()))?)
                        }
                    })
                    .collect::<std::result::Result<Vec<_>, KernelError>>()
            })
            .collect::<std::result::Result<_, _>>()?;
        enter_device(dev)?;
        let stream = current_stream(dev)?;
        let ptr = |t: &Tensor| t.data_ptr() as u64;
        for (dtype, module) in &self.modules {
            let f = module.functions(dev)?;
            let per_chunk = chunk(*dtype) as i64;
            let mine: Vec<usize> = (0..n)
                .filter(|&i| self.dtypes[i] == *dtype && ins[0][i].numel() > 0)
                .collect();
            for group in mine.chunks(MAX_TENSORS) {
                let mut tb = Table {
                    ptr: [[0; MAX_TENSORS]; 7],
                    numel: [0; MAX_TENSORS],
                    chunk_start: [0; MAX_TENSORS + 1],
                };
                let mut blocks: i64 = 0;
                for (slot, &i) in group.iter().enumerate() {
                    for (row, t) in tb.ptr.iter_mut().zip(ins.iter().chain(&outs)) {
                        row[slot] = ptr(&t[i]);
                    }
                    let numel = ins[0][i].numel() as i64;
                    tb.numel[slot] = numel;
                    tb.chunk_start[slot] = blocks as i32;
                    blocks += (numel + per_chunk - 1) / per_chunk;
                    if blocks > i32::MAX as i64 {
                        return Err(KernelError("too many chunks for one AdamW launch".into()));
                    }
                }
                tb.chunk_start[group.len()] = blocks as i32;
                let mut nt = group.len() as i32;
                let mut sp = step.data_ptr() as u64;
                let mut h = self.hyper;
                let mut params: Vec<*mut c_void> = vec![
                    &mut tb as *mut Table as *mut c_void,
                    &mut nt as *mut i32 as *mut c_void,
                    &mut sp as *mut u64 as *mut c_void,
                ];
                params.extend(h.iter_mut().map(|x| x as *mut f64 as *mut c_void));
                // SAFETY: adamw_step's parameters (the table laid out as its `struct Table`);
                // every address is a live contiguous tensor of the module's dtype with `numel`
                // elements, kept alive until the launch is queued on PyTorch's stream.
                unsafe {
                    launch_raw(
                        f[0],
                        blocks as u32,
                        THREADS as u32,
                        stream,
                        &mut params,
                        "adamw_step",
                    )
                }?;
            }
        }
        let mut result = Outputs::new();
        for (r, &k) in [0usize, 2, 3].iter().enumerate() {
            for (i, out) in outs[r].iter().enumerate() {
                let given = lists[k][i];
                if self.inplace && out.data_ptr() != given.data_ptr() {
                    // A noncontiguous donated buffer: the result goes back into it.
                    given.shallow_clone().f_copy_(out)?;
                    result.push(RtValue::Tensor(given.shallow_clone()));
                } else {
                    result.push(RtValue::Tensor(out.shallow_clone()));
                }
            }
        }
        Ok(result)
    }
}
