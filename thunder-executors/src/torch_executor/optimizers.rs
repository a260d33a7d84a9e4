//! Optimizer steps: `ltorch.adamw`.

use super::attrs::{boolean, float};
use super::operands::{contiguous_copy, tensor, tensor_list};
use super::{CResult, Out};
use crate::executor::{Kernel, Outputs, RtValue};
use tch::Tensor;
use thunder_ir::{Attr, BoundSymbol, TorchOp};

/// `adamw`.
pub(super) fn torch(t: TorchOp, bsym: &BoundSymbol, _: &Out) -> CResult<Option<Kernel>> {
    use TorchOp as T;
    let at = &bsym.attrs;
    Ok(Some(match t {
        T::Adamw => adamw_kernel(at)?,
        _ => return Ok(None),
    }))
}

/// `ltorch.adamw` through `torch._fused_adamw_` (one call per dtype). Donated (`inplace`)
/// contiguous buffers are updated in place and returned; otherwise the step works on copies.
fn adamw_kernel(at: &[Attr]) -> CResult<Kernel> {
    let h = crate::shim::AdamwHyper {
        lr: float(&at[0])?,
        beta1: float(&at[1])?,
        beta2: float(&at[2])?,
        eps: float(&at[3])?,
        weight_decay: float(&at[4])?,
    };
    let inplace = boolean(&at[5])?;
    Ok(Box::new(move |args| {
        let lists = [
            tensor_list(args, 0)?,
            tensor_list(args, 1)?,
            tensor_list(args, 2)?,
            tensor_list(args, 3)?,
        ];
        let step = tensor(args, 4)?;
        // The buffers the step writes: the donated tensors themselves when contiguous, else
        // contiguous copies (copied back below when donated).
        let mut work: [Vec<Tensor>; 3] = Default::default();
        for (k, w) in [0usize, 2, 3].into_iter().zip(work.iter_mut()) {
            for t in &lists[k] {
                w.push(if inplace && t.is_contiguous() {
                    t.shallow_clone()
                } else {
                    contiguous_copy(t)?
                });
            }
        }
        let grads: Vec<Tensor> = lists[1]
            .iter()
            .map(|g| g.f_contiguous())
            .collect::<Result<_, _>>()?;
        let mut kinds: Vec<tch::Kind> = Vec::new();
        for p in &lists[0] {
            if !kinds.contains(&p.kind()) {
                kinds.push(p.kind());
            }
        }
        for kd in kinds {
            let idx: Vec<usize> = (0..lists[0].len())
                .filter(|&i| lists[0][i].kind() == kd)
                .collect();
            fn pick<'a>(ts: &'a [Tensor], idx: &[usize]) -> Vec<&'a Tensor> {
                idx.iter().map(|&i| &ts[i]).collect()
            }
            crate::shim::fused_adamw_(
                &pick(&work[0], &idx),
                &pick(&grads, &idx),
                &pick(&work[1], &idx),
                &pick(&work[2], &idx),
                step,
                h,
            )?;
        }
        let mut out = Outputs::new();
        for (k, w) in [0usize, 2, 3].into_iter().zip(work) {
            for (t, new) in lists[k].iter().zip(w) {
                if inplace {
                    if new.data_ptr() != t.data_ptr() {
                        t.shallow_clone().f_copy_(&new)?;
                    }
                    out.push(RtValue::Tensor(t.shallow_clone()));
                } else {
                    out.push(RtValue::Tensor(new));
                }
            }
        }
        Ok(out)
    }))
}
