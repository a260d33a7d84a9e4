//! The fusion executor without a GPU: which ops it groups into regions (golden files for a Llama
//! block's forward and backward), the decisions that matter (norms and softmax in one rows kernel,
//! matmuls and attention left to the torch executor), and that every generated kernel compiles
//! with NVRTC (the PyTorch wheel's, for sm_90).
//!
//! `THUNDER_BLESS=1` rewrites the golden files.

use thunder_executors::cuda::compile_ptx;
use thunder_executors::fusion::{generate, Schedule};
use thunder_executors::{ExecutionPlan, FusionExecutor, TorchExecutor};
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{DType, Device, TensorMeta, Trace, TraceBuilder, Value};

/// The package folder, read at run time: cargo sets `CARGO_MANIFEST_DIR` for the tests it
/// runs, and the GPU bundle's `run-tests.sh` sets it for binaries built on another machine,
/// whose build-time path does not exist there. The build-time path is the fallback.
fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

fn cuda_tiny() -> LlamaDims {
    LlamaDims {
        dtype: DType::BF16,
        device: Device::Cuda(0),
        ..LlamaDims::tiny()
    }
}

fn plan(t: &Trace) -> ExecutionPlan {
    ExecutionPlan::compile(t, &[&FusionExecutor, &TorchExecutor::new()])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn golden(name: &str, text: &str) {
    let path = package_dir().join("tests/golden").join(name);
    if std::env::var_os("THUNDER_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == text,
        "{} differs; rerun with THUNDER_BLESS=1 if the change is intended:\n{text}",
        path.display()
    );
}

/// Every region's kernel compiles with NVRTC for sm_90, and each region output has exactly one
/// kernel that writes it. Returns the regions and how many kernels write outputs of another
/// shape than the region's rows or columns kernel (`<name>_o_<i>`).
fn compiles(p: &ExecutionPlan) -> (usize, usize) {
    let claimed = p.claimed();
    let ops: Vec<_> = claimed.ops.iter().map(|o| o.bsym.clone()).collect();
    let mut tails = 0;
    for (r, region) in claimed.regions.iter().enumerate() {
        let name = format!("region{r}");
        let k = generate(&claimed.trace, &ops, region, &name)
            .unwrap_or_else(|e| panic!("region {r}: {e}"));
        compile_ptx(&k.source, "compute_90").unwrap_or_else(|e| panic!("region {r}: {e}"));
        for j in 0..region.outputs.len() {
            let writers: Vec<&str> = k
                .entries
                .iter()
                .filter(|e| e.outputs.contains(&j))
                .map(|e| e.name.as_str())
                .collect();
            assert_eq!(writers.len(), 1, "region {r} output {j}: {writers:?}");
        }
        tails += k
            .entries
            .iter()
            .filter(|e| e.name.starts_with(&format!("{name}_o_")))
            .count();
    }
    (claimed.regions.len(), tails)
}

#[test]
fn llama_block_forward_and_backward_regions() {
    let block = programs::llama_block(&cuda_tiny()).unwrap();
    let fwd = plan(&block);
    golden("fusion_llama_block_forward.py", &fwd.claimed().to_python());
    let wrt: Vec<Value> = block
        .inputs
        .iter()
        .copied()
        .filter(|&v| block.tensor(v).is_some_and(|t| t.dtype.is_float()))
        .collect();
    let fb = thunder_transforms::forward_backward(&block, &wrt).unwrap();
    let bwd = plan(&fb.backward);
    golden("fusion_llama_block_backward.py", &bwd.claimed().to_python());
    assert!(compiles(&fwd).0 >= 4);
    let (regions, tails) = compiles(&bwd);
    assert!(regions >= 4);
    // RoPE's backward beside the norms' rows: outputs of other shapes, kernels of their own.
    assert!(
        tails >= 1,
        "{regions} regions, {tails} kernels for outputs of other shapes"
    );
}

#[test]
fn norms_and_softmax_are_one_rows_kernel_and_matmuls_stay_with_torch() {
    let mut b = TraceBuilder::new("f");
    let meta = |s: &[usize]| TensorMeta::new(DType::BF16, s.to_vec()).on(Device::Cuda(0));
    // Large enough for the vector variants (8 bf16 per 16-byte access).
    let x = b.input("x", meta(&[256, 1024])).unwrap();
    let w = b.input("w", meta(&[1024])).unwrap();
    let m = b.input("m", meta(&[1024, 1024])).unwrap();
    let n = b.rms_norm(x, &[1024], Some(w), None).unwrap();
    let h = b.matmul(n, m).unwrap();
    let s = b.softmax(h, -1).unwrap();
    let t = b.build(&[s]).unwrap();
    let p = plan(&t);
    let c = p.claimed();
    assert_eq!(c.regions.len(), 2, "{}", c.to_python());
    for r in &c.regions {
        assert!(
            matches!(&r.schedule, Schedule::Rows { full, k: 1 } if full == &vec![256, 1024]),
            "{r:?}"
        );
        assert_eq!(r.outputs.len(), 1);
    }
    let text = c.to_python();
    assert!(
        text.lines()
            .any(|l| l.contains("ltorch.matmul") && l.ends_with("[torch]")),
        "{text}"
    );
    assert_eq!(compiles(&p).0, 2);
    // Both rows kernels have a vector variant (16-byte loads of x and of the matmul's output).
    let ops: Vec<_> = c.ops.iter().map(|o| o.bsym.clone()).collect();
    for (i, r) in c.regions.iter().enumerate() {
        let k = generate(&c.trace, &ops, r, &format!("r{i}")).unwrap();
        assert!(
            matches!(
                &k.entries[0].launch,
                thunder_executors::fusion::Launch::Rows {
                    vector: Some((8, _, _)),
                    ..
                }
            ),
            "{:?}",
            k.entries[0].launch
        );
        assert!(k.source.contains("_vec("));
    }
}

#[test]
fn pointwise_chains_fuse_and_views_stay_views() {
    // silu(a) * b, then a reshape whose result leaves the region: one pointwise kernel; the
    // reshape of the output runs on the torch executor (a view, no copy).
    let mut b = TraceBuilder::new("swiglu");
    let meta = |s: &[usize]| TensorMeta::new(DType::BF16, s.to_vec()).on(Device::Cuda(0));
    let a = b.input("a", meta(&[4, 32])).unwrap();
    let g = b.input("g", meta(&[4, 32])).unwrap();
    let s = b.silu(a).unwrap();
    let y = b.mul(s, g).unwrap();
    let r = b.reshape(y, &[128]).unwrap();
    let t = b.build(&[r]).unwrap();
    let p = plan(&t);
    let c = p.claimed();
    assert_eq!(c.regions.len(), 1, "{}", c.to_python());
    assert_eq!(c.regions[0].schedule, Schedule::Pointwise);
    assert_eq!(c.regions[0].inputs.len(), 2);
    let text = c.to_python();
    assert!(
        text.lines()
            .any(|l| l.contains("prims.reshape") && l.ends_with("[torch]")),
        "{text}"
    );
    assert_eq!(compiles(&p).0, 1);
}

#[test]
fn cpu_traces_are_not_fused() {
    let t = programs::llama_block(&LlamaDims::tiny()).unwrap();
    let p = plan(&t);
    assert!(p.claimed().regions.is_empty());
    assert!(!p.claimed().to_python().contains("[fusion"));
}

#[test]
fn views_needed_outside_a_region_read_what_the_region_exports() {
    // torch.stack of an f32 and an f64 tensor: the f32 one is converted (fused), then unsqueezed
    // by a broadcast that the cat reads outside the region.
    let mut b = TraceBuilder::new("stack");
    let a = b
        .input("a", TensorMeta::new(DType::F32, [2, 3]).on(Device::Cuda(0)))
        .unwrap();
    let c = b
        .input("c", TensorMeta::new(DType::F64, [2, 3]).on(Device::Cuda(0)))
        .unwrap();
    let s = b.stack(&[a, c], 0).unwrap();
    let t = b.build(&[s]).unwrap();
    let p = plan(&t);
    compiles(&p);
    // And every region output of a Llama block backward is computed before it is read (checked
    // when the plan is built).
    let block = programs::llama_block(&cuda_tiny()).unwrap();
    let fb = thunder_transforms::forward_backward(&block, &block.inputs[3..]).unwrap();
    plan(&fb.backward);
}

#[test]
fn a_real_size_llama_block_plans_with_size_one_dims() {
    // Llama-2-7B's block at batch 1: the rows of its norms have a size-1 leading dim.
    let dims = LlamaDims {
        dtype: DType::BF16,
        device: Device::Cuda(0),
        ..LlamaDims::default()
    };
    let block = programs::llama_block(&dims).unwrap();
    let fb = thunder_transforms::forward_backward(&block, &block.inputs[3..]).unwrap();
    let fwd = plan(&fb.forward);
    let bwd = plan(&fb.backward);
    assert!(fwd.claimed().regions.len() >= 4 && bwd.claimed().regions.len() >= 4);
    // Every kernel compiles with NVRTC.
    assert!(compiles(&fwd).0 >= 4 && compiles(&bwd).0 >= 4);
}

#[test]
fn cross_entropy_kernels_compile_for_every_dtype_and_row_length() {
    use thunder_executors::kernels::xent;
    // Short rows, rows kept in registers (vector and scalar), rows read twice, odd lengths.
    for dtype in [DType::F16, DType::BF16, DType::F32, DType::F64] {
        for classes in [1usize, 5, 1001, 4000, 32000, 40000, 256_000] {
            let src = xent::source(dtype, classes).unwrap();
            compile_ptx(&src, "compute_90").unwrap_or_else(|e| panic!("{dtype} x {classes}: {e}"));
        }
    }
    let e = xent::source(DType::I64, 5).unwrap_err().to_string();
    assert!(e.contains("floating"), "{e}");
}

#[test]
fn the_loss_and_its_gradient_go_to_the_cross_entropy_executor() {
    use thunder_executors::CrossEntropyExecutor;
    let head = programs::lm_head_loss(&cuda_tiny()).unwrap();
    let wrt: Vec<Value> = head
        .inputs
        .iter()
        .copied()
        .filter(|&v| head.tensor(v).is_some_and(|t| t.dtype.is_float()))
        .collect();
    let fb = thunder_transforms::forward_backward(&head, &wrt).unwrap();
    let list: [&dyn thunder_executors::Executor; 3] = [
        &CrossEntropyExecutor,
        &FusionExecutor,
        &TorchExecutor::new(),
    ];
    for (t, op) in [
        (&fb.forward, "ltorch.cross_entropy("),
        (&fb.backward, "ltorch.cross_entropy_backward("),
    ] {
        let p = ExecutionPlan::compile(t, &list).unwrap_or_else(|e| panic!("{e}"));
        let text = p.claimed().to_python();
        assert!(
            text.lines()
                .any(|l| l.contains(op) && l.ends_with("[cross-entropy]")),
            "{op} is not claimed by the cross-entropy executor:\n{text}"
        );
        // Nothing of the softmax is left for the other executors.
        assert!(
            !text.contains("prims.exp"),
            "a softmax outside the fused kernel:\n{text}"
        );
    }
    // On CPU the executor declines, and the torch executor runs libtorch's op.
    let cpu = programs::lm_head_loss(&LlamaDims::tiny()).unwrap();
    let p = ExecutionPlan::compile(&cpu, &list).unwrap();
    assert!(!p.claimed().to_python().contains("[cross-entropy]"));
}

#[test]
fn adamw_kernels_compile_for_every_dtype() {
    use thunder_executors::kernels::adamw;
    for dtype in [DType::F16, DType::BF16, DType::F32, DType::F64] {
        let src = adamw::source(dtype).unwrap();
        compile_ptx(&src, "compute_90").unwrap_or_else(|e| panic!("{dtype}: {e}"));
    }
    let e = adamw::source(DType::I32).unwrap_err().to_string();
    assert!(e.contains("floating"), "{e}");
}

/// One AdamW step over two bf16 parameters and a f32 one on `device`, the buffers donated.
fn adamw_trace(device: Device, step_dtype: DType) -> Trace {
    let params = [
        (DType::BF16, vec![64, 32]),
        (DType::BF16, vec![32]),
        (DType::F32, vec![7]),
    ];
    let o = thunder_ir::AdamwOptions {
        inplace: true,
        ..Default::default()
    };
    programs::adamw_step(&params, step_dtype, device, &o).unwrap()
}

#[test]
fn the_optimizer_step_is_one_op_for_the_adamw_executor() {
    use thunder_executors::AdamwExecutor;
    let list: [&dyn thunder_executors::Executor; 3] =
        [&AdamwExecutor, &FusionExecutor, &TorchExecutor::new()];
    let p = ExecutionPlan::compile(&adamw_trace(Device::Cuda(0), DType::F32), &list).unwrap();
    let text = p.claimed().to_python();
    let claimed: Vec<&str> = text.lines().filter(|l| l.contains(" = ")).collect();
    assert_eq!(claimed.len(), 1, "{text}");
    assert!(
        claimed[0].contains("ltorch.adamw(") && claimed[0].ends_with("[adamw]"),
        "{text}"
    );
    // A float64 step count is left to the others (here the fusion executor, which fuses the
    // decomposition); on the CPU the torch executor runs PyTorch's fused AdamW.
    let claimed = |t: &Trace| {
        ExecutionPlan::compile(t, &list)
            .unwrap()
            .claimed()
            .to_python()
    };
    let text = claimed(&adamw_trace(Device::Cuda(0), DType::F64));
    assert!(
        !text.contains("[adamw]") && text.contains("[fusion "),
        "{text}"
    );
    let text = claimed(&adamw_trace(Device::Cpu, DType::F32));
    assert!(
        text.lines()
            .any(|l| l.contains("ltorch.adamw(") && l.ends_with("[torch]")),
        "{text}"
    );
}

/// The backward of `sum(rms_norm(x, w) * c)`: the weight's gradient, a sum over the rows of a
/// product the input's gradient also needs, is accumulated by the rows kernel that computes the
/// input's gradient (per block, then a second kernel adds the blocks' partials), so nothing of
/// the full size goes from one kernel to another.
#[test]
fn a_norm_weight_gradient_is_summed_by_the_rows_kernel_of_the_input_gradient() {
    use thunder_executors::fusion::{Launch, Schedule};
    let (t, h) = (64usize, 256usize);
    let meta = |s: &[usize]| TensorMeta::new(DType::BF16, s.to_vec()).on(Device::Cuda(0));
    let mut b = TraceBuilder::new("rmsnorm_fb");
    let x = b.input("x", meta(&[t, h])).unwrap();
    let w = b.input("w", meta(&[h])).unwrap();
    let c = b.input("c", meta(&[t, h])).unwrap();
    let y = b.rms_norm(x, &[h], Some(w), Some(1e-5)).unwrap();
    let p = b.mul(y, c).unwrap();
    let l = b.sum(p, &[], false).unwrap();
    let trace = b.build(&[l]).unwrap();
    let fb = thunder_transforms::forward_backward(&trace, &[x, w]).unwrap();
    let bwd = plan(&fb.backward);
    let claimed = bwd.claimed();
    let text = claimed.to_python();
    let sum_line = text
        .lines()
        .find(|l| l.contains("prims.sum(") && l.contains("dims=[0]"))
        .unwrap_or_else(|| panic!("no sum over the rows:\n{text}"));
    let r: usize = sum_line
        .rsplit_once("[fusion fusion")
        .and_then(|(_, n)| n.trim_end_matches(']').parse().ok())
        .unwrap_or_else(|| panic!("the column sum is not fused: {sum_line}\n{text}"));
    let region = &claimed.regions[r];
    assert!(
        matches!(region.schedule, Schedule::Rows { .. }),
        "{:?}\n{text}",
        region.schedule
    );
    // Every value passed between the regions (and libtorch's ops) is small or bf16.
    for reg in &claimed.regions {
        for &v in reg.inputs.iter().chain(&reg.outputs) {
            let m = fb.backward.tensor(v).unwrap();
            assert!(
                m.dtype == DType::BF16 || m.shape.numel() <= h.max(t),
                "{} {m:?} crosses a region boundary:\n{text}",
                fb.backward.name_of(v)
            );
        }
    }
    // The rows kernel takes a workspace for the partials, and a second kernel adds them.
    let ops: Vec<_> = claimed.ops.iter().map(|o| o.bsym.clone()).collect();
    let k = generate(&claimed.trace, &ops, region, "r").unwrap();
    assert!(
        matches!(k.entries[0].launch, Launch::Rows { workspace, .. } if workspace > 0),
        "{:?}",
        k.entries
    );
    assert!(
        k.entries.iter().any(|e| e.name == "r_fin"),
        "{:?}",
        k.entries
    );
    assert_eq!(compiles(&bwd).0, claimed.regions.len());
}

/// The region of the first statement of `text` that contains `needle`, and whether the line says
/// which region recomputes it.
fn region_of(text: &str, needle: &str) -> (usize, Option<usize>) {
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle}:\n{text}"));
    let num = |s: &str| -> usize {
        s.chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("{line}"))
    };
    let owner = line
        .split_once("[fusion fusion")
        .map(|(_, r)| num(r))
        .unwrap_or_else(|| panic!("not fused: {line}"));
    let recomputed = line.split_once("recomputed in fusion").map(|(_, r)| num(r));
    (owner, recomputed)
}

/// `exp(p.float())` is computed next to `p = x1 + x2 + x3 + x4` (bf16, which a matmul reads as
/// well) and read by a region after the matmul. Passing it costs 8 bytes an element (float32,
/// written for that region alone, then read); recomputing it from the four inputs costs as much;
/// recomputing it from `p`, which is written for the matmul anyway, costs 2. The minimum cut
/// takes `p`: a rule that recomputes back to the region's inputs would not.
#[test]
fn the_min_cut_recomputes_from_the_cheapest_values_between_regions() {
    let (t, h) = (64usize, 256usize);
    let meta = |s: &[usize]| TensorMeta::new(DType::BF16, s.to_vec()).on(Device::Cuda(0));
    let mut b = TraceBuilder::new("cut");
    let xs: Vec<Value> = (1..=4)
        .map(|k| b.input(&format!("x{k}"), meta(&[t, h])).unwrap())
        .collect();
    let w = b.input("w", meta(&[h, h])).unwrap();
    let s1 = b.add(xs[0], xs[1]).unwrap();
    let s2 = b.add(xs[2], xs[3]).unwrap();
    let p = b.add(s1, s2).unwrap();
    let m = b.matmul(p, w).unwrap();
    let pf = b.to_dtype(p, DType::F32).unwrap();
    let q = b.exp(pf).unwrap();
    let mf = b.to_dtype(m, DType::F32).unwrap();
    let z = b.mul(q, mf).unwrap();
    let trace = b.build(&[z]).unwrap();
    let pl = plan(&trace);
    let claimed = pl.claimed();
    let text = claimed.to_python();
    let (producer, recomputed) = region_of(&text, "prims.exp(");
    let consumer = recomputed.unwrap_or_else(|| panic!("exp is not recomputed:\n{text}"));
    assert_ne!(producer, consumer, "{text}");
    let reg = &claimed.regions[consumer];
    let names: Vec<&str> = reg
        .inputs
        .iter()
        .map(|&v| claimed.trace.name_of(v))
        .collect();
    // It reads p (bf16) and the matmul's result, not a float32 value and not the four inputs.
    assert!(
        names.contains(&claimed.trace.name_of(p)),
        "{names:?}\n{text}"
    );
    for &v in &reg.inputs {
        let m = claimed.trace.tensor(v).unwrap();
        assert_eq!(m.dtype, DType::BF16, "{names:?}\n{text}");
    }
    assert!(
        xs.iter().all(|x| !reg.inputs.contains(x)),
        "{names:?}\n{text}"
    );
    // The producer writes p alone: exp(p) is computed in no region but the consumer.
    let out: Vec<&str> = claimed.regions[producer]
        .outputs
        .iter()
        .map(|&v| claimed.trace.name_of(v))
        .collect();
    assert_eq!(out, [claimed.trace.name_of(p)], "{text}");
    assert!(text.contains("(not needed there), recomputed in"), "{text}");
    assert_eq!(compiles(&pl).0, claimed.regions.len());
}

/// Recomputing a bf16 value from the three bf16 inputs it is the sum of reads 6 bytes an
/// element; passing it writes and reads 4: the value is passed (only its conversion to float32,
/// which the partitioner put next to it, moves to the consumer).
#[test]
fn a_value_cheaper_to_pass_than_to_recompute_is_passed() {
    let (t, h) = (64usize, 256usize);
    let meta = |s: &[usize]| TensorMeta::new(DType::BF16, s.to_vec()).on(Device::Cuda(0));
    let mut b = TraceBuilder::new("passed");
    let x1 = b.input("x1", meta(&[t, h])).unwrap();
    let x2 = b.input("x2", meta(&[t, h])).unwrap();
    let x3 = b.input("x3", meta(&[t, h])).unwrap();
    let w = b.input("w", meta(&[h, h])).unwrap();
    let s = b.add(x1, x2).unwrap();
    let a = b.add(s, x3).unwrap();
    let a2 = b.mul(x1, 2.0).unwrap();
    let m = b.matmul(a2, w).unwrap();
    let z = b.mul(a, m).unwrap();
    let trace = b.build(&[z]).unwrap();
    let pl = plan(&trace);
    let claimed = pl.claimed();
    let text = claimed.to_python();
    let consumer = claimed
        .regions
        .iter()
        .position(|r| r.inputs.contains(&m))
        .unwrap_or_else(|| panic!("no region reads the matmul:\n{text}"));
    let reg = &claimed.regions[consumer];
    assert!(reg.inputs.contains(&a), "{text}");
    assert!(
        [x1, x2, x3].iter().all(|x| !reg.inputs.contains(x)),
        "{text}"
    );
    // The producer's region converts `a` to float32 for the consumer: that conversion is all
    // the consumer recomputes (reading bf16 rather than float32).
    let recomputed: Vec<String> = reg
        .recompute
        .iter()
        .map(|&i| format!("{:?}", claimed.ops[i].bsym.op))
        .collect();
    assert_eq!(recomputed.len(), 1, "{recomputed:?}\n{text}");
    assert!(
        recomputed[0].contains("ConvertElementType"),
        "{recomputed:?}"
    );
}

/// A Llama block's forward and backward (grouped-query attention, vector-sized rows) on the
/// fusion executor, whose regions recompute what others computed (see the golden files), give
/// what the torch executor gives on the same inputs: on a GPU, in float32 and in bf16. Without a
/// GPU the plans are only compiled (NVRTC).
#[test]
fn a_llama_block_step_with_rematerialized_regions_matches_the_torch_executor() {
    for (dtype, tol) in [(DType::F32, 1e-4), (DType::BF16, 3e-2)] {
        let dims = LlamaDims {
            batch: 2,
            seq_len: 64,
            hidden: 256,
            heads: 4,
            kv_heads: 2,
            intermediate: 688,
            dtype,
            device: Device::Cuda(0),
            ..LlamaDims::tiny()
        };
        let block = programs::llama_block(&dims).unwrap();
        let wrt: Vec<Value> = block
            .inputs
            .iter()
            .copied()
            .filter(|&v| block.tensor(v).is_some_and(|t| t.dtype.is_float()))
            .collect();
        let fb = thunder_transforms::forward_backward(&block, &wrt).unwrap();
        let fused = [plan(&fb.forward), plan(&fb.backward)];
        let text = fused[1].claimed().to_python();
        assert!(text.contains("recomputed in"), "{text}");
        assert!(compiles(&fused[0]).0 >= 3 && compiles(&fused[1]).0 >= 3);
        if !tch::Cuda::is_available() {
            continue;
        }
        let torch = [&fb.forward, &fb.backward].map(|t| {
            ExecutionPlan::compile(t, &[&TorchExecutor::new()]).unwrap_or_else(|e| panic!("{e}"))
        });
        let randn = |t: &Trace, v: Value| {
            let m = t.tensor(v).unwrap();
            let shape: Vec<i64> = m.shape.sizes().iter().map(|&s| s as i64).collect();
            tch::Tensor::randn(
                shape.as_slice(),
                (
                    thunder_executors::convert::kind(m.dtype),
                    tch::Device::Cuda(0),
                ),
            )
        };
        let close = |what: &str, got: &[tch::Tensor], want: &[tch::Tensor]| {
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let (g, w) = (g.to_kind(tch::Kind::Double), w.to_kind(tch::Kind::Double));
                let err = (&g - &w).abs().max().double_value(&[]);
                let scale = w.abs().max().double_value(&[]).max(1.0);
                assert!(
                    err <= tol * scale,
                    "{dtype} {what} output {i}: differs by {err:.3e} (scale {scale:.3e})"
                );
            }
        };
        let ins: Vec<tch::Tensor> = fb
            .forward
            .inputs
            .iter()
            .map(|&v| randn(&fb.forward, v))
            .collect();
        let got = fused[0].run_tensors(&ins).unwrap_or_else(|e| panic!("{e}"));
        let want = torch[0].run_tensors(&ins).unwrap_or_else(|e| panic!("{e}"));
        close("forward", &got, &want);
        // The backward takes the saved values (from the torch executor's forward) and cotangents.
        let n_out = fb.forward.outputs.len() - fb.num_saved;
        let mut bins: Vec<tch::Tensor> = want[n_out..].iter().map(|t| t.shallow_clone()).collect();
        for &v in &fb.backward.inputs[fb.num_saved..] {
            bins.push(randn(&fb.backward, v));
        }
        let got = fused[1]
            .run_tensors(&bins)
            .unwrap_or_else(|e| panic!("{e}"));
        let want = torch[1]
            .run_tensors(&bins)
            .unwrap_or_else(|e| panic!("{e}"));
        close("backward", &got, &want);
    }
}

#[test]
fn number_arithmetic_stays_out_of_regions_and_pow_grads_fold_their_exponent() {
    use thunder_ir::{Arg, PrimOp};
    // A trace with arithmetic on numbers between tensor ops, as a grad rule may write it.
    let mut b = TraceBuilder::new("f");
    let x = b
        .input("x", TensorMeta::new(DType::F32, [4, 8]).on(Device::Cuda(0)))
        .unwrap();
    let e = b
        .prim(PrimOp::Sub, vec![Arg::Int(2), Arg::Float(1.0)], vec![])
        .unwrap();
    let y = b
        .prim(PrimOp::Pow, vec![x.into(), e.into()], vec![])
        .unwrap();
    let z = b.exp(y).unwrap();
    let t = b.build(&[z]).unwrap();
    let number_op = t.bound_symbols.iter().find(|s| s.outputs == [e]).unwrap();
    assert!(!thunder_executors::fusion::fusible(&t, number_op));
    let p = plan(&t);
    assert_eq!(p.claimed().regions.len(), 1, "{}", p.claimed().to_python());

    // The grad of x ** 2 computes 2 - 1 now, not in the backward trace.
    let mut b = TraceBuilder::new("g");
    let x = b
        .input(
            "x",
            TensorMeta::new(DType::F32, [4, 8])
                .on(Device::Cuda(0))
                .with_grad(true),
        )
        .unwrap();
    let y = b.pow(x, 2).unwrap();
    let s = b.sum(y, &[], false).unwrap();
    let t = b.build(&[s]).unwrap();
    let fb = thunder_transforms::forward_backward(&t, &[x]).unwrap();
    for trace in [&fb.forward, &fb.backward] {
        let numbers: Vec<_> = trace
            .bound_symbols
            .iter()
            .filter(|s| s.outputs.iter().any(|&o| trace.tensor(o).is_none()))
            .collect();
        assert!(numbers.is_empty(), "{}", trace.to_python());
    }
    plan(&fb.backward);
}
