//! The fusion executor: regions of fusible prims compiled into CUDA kernels and launched on
//! PyTorch's stream (feature `cuda`).
//!
//! Kernels run on PyTorch's current stream of the device, in the device's primary context
//! (PyTorch's); outputs are allocated by libtorch, so its caching allocator owns them. Nothing
//! synchronizes.

use super::codegen::{fusible as codegen_fusible, generate, Launch, RegionKernel};
use super::partition::Region;
use crate::convert;
use crate::cuda::{current_stream, enter_device, fnv1a, launch, CudaError, Module};
use crate::executor::{Args, Executor, Fuser, KArg, Kernel, KernelError, Outputs, RtValue};
use crate::{Error, Result};
use std::sync::Arc;
use tch::Tensor;
use thunder_ir::{BoundSymbol, Trace, ValueType};

struct CompiledRegion {
    kernel: RegionKernel,
    /// The device of the region's outputs (for regions without tensor inputs).
    device: Option<i32>,
    /// Per region input: `Some(rank)` for tensors, `None` for numbers.
    inputs: Vec<Option<usize>>,
    /// Per region output: shape and dtype.
    outputs: Vec<(Vec<i64>, tch::Kind)>,
    /// The kernels; per entry its scalar function, then its vector one if it has one.
    module: Module,
}

impl CompiledRegion {
    fn new(
        kernel: RegionKernel,
        device: Option<i32>,
        inputs: Vec<Option<usize>>,
        outputs: Vec<(Vec<i64>, tch::Kind)>,
    ) -> Self {
        let mut names = Vec::new();
        for e in &kernel.entries {
            names.push(e.name.clone());
            if Self::has_vector(&e.launch) {
                names.push(format!("{}_vec", e.name));
            }
        }
        let module = Module::new(kernel.source.clone(), names);
        if let Some(d) = device {
            module.prefetch(d);
        }
        CompiledRegion {
            kernel,
            device,
            inputs,
            outputs,
            module,
        }
    }

    fn has_vector(l: &Launch) -> bool {
        matches!(
            l,
            Launch::Pointwise {
                vector: Some(_),
                ..
            } | Launch::Rows {
                vector: Some(_),
                ..
            } | Launch::Columns {
                contiguous: true,
                ..
            }
        )
    }

    /// Per entry: the scalar function and the vector one (if any).
    fn load(&self, dev: i32) -> std::result::Result<Vec<(usize, Option<usize>)>, CudaError> {
        let f = self.module.functions(dev)?;
        let mut it = f.iter().copied();
        let mut out = Vec::with_capacity(self.kernel.entries.len());
        for e in &self.kernel.entries {
            let scalar = it
                .next()
                .ok_or(CudaError::MissingFunction { vector: false })?;
            let vector = if Self::has_vector(&e.launch) {
                Some(
                    it.next()
                        .ok_or(CudaError::MissingFunction { vector: true })?,
                )
            } else {
                None
            };
            out.push((scalar, vector));
        }
        Ok(out)
    }

    /// Whether a vector variant reading `w` elements per access may run: its `direct` inputs
    /// contiguous, and they and every output aligned to the access.
    fn vector_ok(&self, w: usize, direct: &[usize], tensors: &[Tensor], outs: &Outputs) -> bool {
        let aligned =
            |t: &Tensor| (t.data_ptr() as usize) % (w * t.kind().elt_size_in_bytes()) == 0;
        direct.iter().all(|&k| {
            tensors
                .get(input_tensor_pos(&self.inputs, k))
                .is_some_and(|t| t.is_contiguous() && aligned(t))
        }) && outs.iter().all(|o| o.as_tensor().is_some_and(aligned))
    }

    fn run(&self, args: &Args<'_>) -> std::result::Result<Outputs, KernelError> {
        let (mut slots, device, tensors) = self.bind_inputs(args)?;
        let dev = match device.or(self.device) {
            Some(d) => d,
            None => return Err(KernelError("a fusion region without CUDA tensors".into())),
        };
        enter_device(dev)?;
        let funcs = self.load(dev)?;
        let mut outs = Outputs::new();
        for (shape, kind) in &self.outputs {
            let t = Tensor::f_empty(shape.as_slice(), (*kind, tch::Device::Cuda(dev as usize)))?;
            slots.push(t.data_ptr() as u64);
            outs.push(RtValue::Tensor(t));
        }
        let stream = current_stream(dev)?;
        let workspace = self.workspace(dev)?;
        let mut ws_slots: Vec<u64> = Vec::new();
        if let Some(ws) = &workspace {
            ws_slots = slots.clone();
            ws_slots.push(ws.data_ptr() as u64);
        }
        for (e, &functions) in self.kernel.entries.iter().zip(&funcs) {
            let Some((func, grid, block, with_workspace)) =
                self.launch_config(&e.launch, functions, &tensors, &outs)
            else {
                continue;
            };
            // A rows kernel with column sums and the columns stages take the workspace last
            // (a rows kernel's grid is then the number of partials the workspace holds).
            let params = if with_workspace {
                &mut ws_slots
            } else {
                &mut slots
            };
            // SAFETY: the function takes exactly these parameters (generated together with it),
            // the pointers are live tensors of the right dtypes and shapes, and the launch is
            // ordered on PyTorch's stream with the ops that produce and consume them.
            unsafe { launch(func, grid, block, stream, params, &e.name) }?;
        }
        // Keep the inputs (and the workspace) alive until the launches are queued (libtorch's
        // allocator reuses memory only in stream order, so queued is enough).
        drop(tensors);
        drop(workspace);
        Ok(outs)
    }

    /// The kernel parameters of the region's inputs (8-byte slots: the driver reads each
    /// argument's size from the kernel), the device of its tensor inputs, and those tensors.
    #[allow(clippy::type_complexity)]
    fn bind_inputs(
        &self,
        args: &Args<'_>,
    ) -> std::result::Result<(Vec<u64>, Option<i32>, Vec<Tensor>), KernelError> {
        let mut slots: Vec<u64> = Vec::with_capacity(4 * self.inputs.len() + self.outputs.len());
        let mut device: Option<i32> = None;
        let mut tensors: Vec<Tensor> = Vec::with_capacity(self.inputs.len());
        for (k, rank) in self.inputs.iter().enumerate() {
            match (args.get(k)?, rank) {
                (KArg::Value(RtValue::Tensor(t)), Some(r)) => {
                    let d = match t.device() {
                        tch::Device::Cuda(i) => i as i32,
                        other => {
                            return Err(KernelError(format!(
                                "fusion kernels run on CUDA tensors, input {k} is on {other:?}"
                            )))
                        }
                    };
                    if *device.get_or_insert(d) != d {
                        return Err(KernelError(
                            "a region's inputs are on different devices".into(),
                        ));
                    }
                    slots.push(t.data_ptr() as u64);
                    let st = t.stride();
                    if st.len() != *r {
                        return Err(KernelError(format!(
                            "input {k} has rank {} not {r}",
                            st.len()
                        )));
                    }
                    slots.extend(st.iter().map(|&s| s as u64));
                    tensors.push(t.shallow_clone());
                }
                (KArg::Value(RtValue::Int(i)), None) => slots.push(*i as u64),
                (KArg::Int(i), None) => slots.push(i as u64),
                (KArg::Value(RtValue::Float(f)), None) => slots.push(f.to_bits()),
                (KArg::Float(f), None) => slots.push(f.to_bits()),
                (KArg::Value(RtValue::Bool(b)), None) => slots.push(*b as u64),
                (KArg::Bool(b), None) => slots.push(b as u64),
                _ => return Err(KernelError(format!("region input {k} has the wrong kind"))),
            }
        }
        Ok((slots, device, tensors))
    }

    /// A columns region's partial results (or a rows region's column partials), shared by its
    /// two stages.
    fn workspace(&self, dev: i32) -> std::result::Result<Option<Tensor>, KernelError> {
        Ok(self
            .kernel
            .entries
            .iter()
            .filter_map(|e| match e.launch {
                Launch::Columns { workspace, .. } | Launch::Rows { workspace, .. }
                    if workspace > 0 =>
                {
                    Some(workspace)
                }
                _ => None,
            })
            .max()
            .map(|bytes| {
                Tensor::f_empty(
                    [bytes as i64],
                    (tch::Kind::Uint8, tch::Device::Cuda(dev as usize)),
                )
            })
            .transpose()?)
    }

    /// The function, grid and block of an entry's launch (the vector variant where it may run)
    /// and whether it takes the workspace; `None` for a launch with nothing to do.
    fn launch_config(
        &self,
        launch: &Launch,
        (scalar, vector): (usize, Option<usize>),
        tensors: &[Tensor],
        outs: &Outputs,
    ) -> Option<(usize, u32, u32, bool)> {
        Some(match launch {
            Launch::Pointwise {
                numel,
                vector: vec,
                direct,
            } => {
                if *numel == 0 {
                    return None;
                }
                let use_vec = match (vec, vector) {
                    (Some(w), Some(_)) => self.vector_ok(*w, direct, tensors, outs),
                    _ => false,
                };
                let (f, n) = match (use_vec, vec, vector) {
                    (true, Some(w), Some(vf)) => (vf, numel / w),
                    _ => (scalar, *numel),
                };
                let threads = 256usize;
                let blocks = n.div_ceil(threads).clamp(1, 1 << 20);
                (f, blocks as u32, threads as u32, false)
            }
            Launch::Rows {
                blocks,
                threads,
                vector: vinfo,
                direct,
                workspace,
                ..
            } => {
                if *blocks == 0 {
                    return None;
                }
                let use_vec = match (vinfo, vector) {
                    (Some((w, _, _)), Some(_)) => self.vector_ok(*w, direct, tensors, outs),
                    _ => false,
                };
                let (f, grid, block) = match (use_vec, vinfo, vector) {
                    (true, Some((_, t, b)), Some(vf)) => (vf, (*b).clamp(1, 1 << 20) as u32, *t),
                    _ => (scalar, (*blocks).clamp(1, 1 << 20) as u32, *threads),
                };
                (f, grid, block, *workspace > 0)
            }
            Launch::Columns {
                blocks, threads, ..
            } => {
                // The variant for contiguous inputs when every tensor input is.
                let f = match vector {
                    Some(vf) if tensors.iter().all(|t| t.is_contiguous()) => vf,
                    _ => scalar,
                };
                (f, (*blocks).clamp(1, 1 << 20) as u32, *threads, true)
            }
        })
    }
}

/// The position among the tensor inputs of region input `k`.
fn input_tensor_pos(inputs: &[Option<usize>], k: usize) -> usize {
    inputs[..k].iter().filter(|r| r.is_some()).count()
}

/// The fusion executor: fusible prims on CUDA tensors become regions compiled into CUDA kernels.
/// Put it before the torch executor: `ExecutionPlan::compile(&trace, &[&FusionExecutor, &torch])`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FusionExecutor;

impl Executor for FusionExecutor {
    fn name(&self) -> &'static str {
        "fusion"
    }
    fn claims(&self, _trace: &Trace, _bsym: &BoundSymbol) -> bool {
        false
    }
    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> Result<Kernel> {
        Err(Error::Compile {
            executor: "fusion",
            statement: thunder_ir::printer::statement(trace, bsym),
            message: "the fusion executor compiles regions, not single ops".into(),
        })
    }
    fn fuser(&self) -> Option<&dyn Fuser> {
        Some(self)
    }
}

impl Fuser for FusionExecutor {
    fn fusible(&self, trace: &Trace, bsym: &BoundSymbol) -> bool {
        let on_cuda = bsym
            .inputs()
            .iter()
            .chain(&bsym.outputs)
            .all(|&v| match trace.ty(v) {
                ValueType::Tensor(t) => t.device.is_cuda(),
                ValueType::Number(_) => true,
            });
        on_cuda && codegen_fusible(trace, bsym)
    }

    fn compile_region(
        &self,
        trace: &Trace,
        ops: &[BoundSymbol],
        region: &Region,
    ) -> Result<Kernel> {
        let gen = |name: &str| {
            generate(trace, ops, region, name).map_err(|m| Error::Compile {
                executor: "fusion",
                statement: format!("a region of {} ops", region.ops.len()),
                message: m.to_string(),
            })
        };
        // Named by what it computes: regions alike (a model's layers) share one source, which
        // NVRTC compiles once (the PTX cache is keyed by source).
        let draft = gen("thunder_region")?;
        let name = format!("thunder_region_{:016x}", fnv1a(&[draft.source.as_bytes()]));
        let kernel = gen(&name)?;
        let inputs = region
            .inputs
            .iter()
            .map(|&v| trace.tensor(v).map(|t| t.rank()))
            .collect();
        let outputs = region
            .outputs
            .iter()
            .map(|&v| {
                let t = trace.tensor(v).ok_or_else(|| Error::Compile {
                    executor: "fusion",
                    statement: trace.name_of(v).to_string(),
                    message: "a region output that is not a tensor".into(),
                })?;
                Ok((
                    t.shape.sizes().iter().map(|&s| s as i64).collect(),
                    convert::kind(t.dtype),
                ))
            })
            .collect::<Result<_>>()?;
        let device = region
            .outputs
            .iter()
            .find_map(|&v| match trace.tensor(v).map(|t| t.device) {
                Some(thunder_ir::Device::Cuda(i)) => Some(i as i32),
                _ => None,
            });
        let compiled = Arc::new(CompiledRegion::new(kernel, device, inputs, outputs));
        Ok(Box::new(move |args: &Args<'_>| compiled.run(args)))
    }
}
