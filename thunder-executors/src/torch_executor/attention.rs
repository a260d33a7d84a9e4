//! Scaled dot-product attention and its backward.

use super::attrs::{boolean, float, opt_float};
use super::nn::differentiable_backward;
use super::operands::{one, opt_tensor, tensor};
use super::{CResult, KResult, Out};
use crate::executor::{Kernel, RtValue};
use tch::Tensor;
use thunder_ir::{BoundSymbol, TorchOp};

/// `scaled_dot_product_attention` and its backward (the fused kernel's own backward on CUDA
/// where it applies, else through autograd).
pub(super) fn torch(t: TorchOp, bsym: &BoundSymbol, _: &Out) -> CResult<Option<Kernel>> {
    use TorchOp as T;
    let at = &bsym.attrs;
    Ok(Some(match t {
        T::ScaledDotProductAttention => {
            let (dropout_p, is_causal, scale, gqa) = (
                float(&at[0])?,
                boolean(&at[1])?,
                opt_float(&at[2])?,
                boolean(&at[3])?,
            );
            Box::new(move |args| {
                one(Tensor::f_scaled_dot_product_attention(
                    tensor(args, 0)?,
                    tensor(args, 1)?,
                    tensor(args, 2)?,
                    opt_tensor(args, 3)?,
                    dropout_p,
                    is_causal,
                    scale,
                    gqa,
                )?)
            })
        }
        T::ScaledDotProductAttentionBackward => {
            // libtorch's own attention backward (flash or memory-efficient on CUDA where they
            // apply), reached through autograd: the forward is rerun on detached leaves, then
            // differentiated with `grad_out` as the output's gradient.
            let (is_causal, scale, gqa) = (boolean(&at[0])?, opt_float(&at[1])?, boolean(&at[2])?);
            Box::new(move |args| {
                let g = tensor(args, 0)?;
                // Inputs that already require grad stay in their graph, and the gradients are
                // built differentiably then (a double backward through eager PyTorch), when
                // grad mode is on (see `differentiable_backward`).
                let inputs = (0..4)
                    .map(|i| tensor(args, i))
                    .collect::<KResult<Vec<_>>>()?;
                let create_graph = differentiable_backward(&inputs);
                // Without a mask or grouped-query attention on CUDA: the fused kernel's own
                // backward, called directly (no autograd graph, no kernels for `out * g`).
                if !create_graph && !gqa && opt_tensor(args, 4)?.is_none() && g.device().is_cuda() {
                    let (q, k, v) = (tensor(args, 1)?, tensor(args, 2)?, tensor(args, 3)?);
                    if let Some(grads) = crate::shim::sdpa_backward(g, q, k, v, is_causal, scale)? {
                        return Ok(grads.into_iter().map(RtValue::Tensor).collect());
                    }
                }
                let leaves: Vec<Tensor> = (1..4)
                    .map(|i| {
                        let t = tensor(args, i)?;
                        Ok(if create_graph && t.requires_grad() {
                            t.shallow_clone()
                        } else {
                            t.detach().set_requires_grad(true)
                        })
                    })
                    .collect::<KResult<_>>()?;
                let grads = tch::with_grad(|| -> KResult<Vec<Tensor>> {
                    // A differentiable backward needs the math path: the fused kernels'
                    // backwards have no derivative.
                    let out = if create_graph {
                        Tensor::f_internal_scaled_dot_product_attention_math(
                            &leaves[0],
                            &leaves[1],
                            &leaves[2],
                            opt_tensor(args, 4)?,
                            0.0,
                            is_causal,
                            None,
                            scale,
                            gqa,
                        )?
                        .0
                    } else {
                        Tensor::f_scaled_dot_product_attention(
                            &leaves[0],
                            &leaves[1],
                            &leaves[2],
                            opt_tensor(args, 4)?,
                            0.0,
                            is_causal,
                            scale,
                            gqa,
                        )?
                    };
                    let loss = out.f_mul(g)?.f_sum(out.kind())?;
                    let refs: Vec<&Tensor> = leaves.iter().collect();
                    Ok(Tensor::f_run_backward(
                        &[loss],
                        &refs,
                        create_graph,
                        create_graph,
                    )?)
                })?;
                Ok(grads.into_iter().map(RtValue::Tensor).collect())
            })
        }
        _ => return Ok(None),
    }))
}
