//! Neural-network ops: matmuls and linear layers, embeddings, softmax, cross entropy and its
//! backward, norms, activations, dropout.

use super::attrs::{
    boolean, float, int, ints, opt_dtype_attr, opt_float, opt_int, opt_num, reduction,
};
use super::error::CompileError;
use super::operands::{one, opt_tensor, tensor, Num};
use super::{CResult, KResult, Out};
use crate::convert::kind;
use crate::executor::{Kernel, RtValue};
use tch::Tensor;
use thunder_ir::{Attr, BoundSymbol, PrimOp, TorchOp};

/// `matmul`, `linear`, `embedding` and its backward.
pub(super) fn prim(p: PrimOp, bsym: &BoundSymbol, _: &Out) -> CResult<Option<Kernel>> {
    use PrimOp::*;
    let at = &bsym.attrs;
    Ok(Some(match p {
        Matmul => Box::new(move |args| one(tensor(args, 0)?.f_matmul(tensor(args, 1)?)?)),
        Linear => Box::new(move |args| {
            one(tensor(args, 0)?.f_linear(tensor(args, 1)?, opt_tensor(args, 2)?)?)
        }),
        Embedding => {
            let padding_idx = opt_int(&at[0])?.unwrap_or(-1);
            if !matches!(at[1], Attr::None) {
                return Err(CompileError::MaxNorm);
            }
            let (sgf, sparse) = (boolean(&at[3])?, boolean(&at[4])?);
            Box::new(move |args| {
                one(Tensor::f_embedding(
                    tensor(args, 1)?,
                    tensor(args, 0)?,
                    padding_idx,
                    sgf,
                    sparse,
                )?)
            })
        }
        EmbeddingBackward => {
            let num = int(&at[0])?;
            let padding_idx = opt_int(&at[1])?.unwrap_or(-1);
            let (sgf, sparse) = (boolean(&at[2])?, boolean(&at[3])?);
            Box::new(move |args| {
                one(Tensor::f_embedding_backward(
                    tensor(args, 0)?,
                    tensor(args, 1)?,
                    num,
                    padding_idx,
                    sgf,
                    sparse,
                )?)
            })
        }
        _ => return Ok(None),
    }))
}

/// Softmaxes, cross entropy and its backward, matmuls, `addmm`, `linear`, `conv2d`, `embedding`, norms,
/// activations and dropout.
pub(super) fn torch(t: TorchOp, bsym: &BoundSymbol, out: &Out) -> CResult<Option<Kernel>> {
    use TorchOp as T;
    let at = &bsym.attrs;
    let out_kind = out.kind;
    Ok(Some(match t {
        T::Softmax | T::LogSoftmax => {
            let dim = int(&at[0])?;
            let dt = opt_dtype_attr(&at[1])?.map(kind);
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if t == T::Softmax {
                    a.f_softmax(dim, dt)?
                } else {
                    a.f_log_softmax(dim, dt)?
                })
            })
        }
        T::CrossEntropy => {
            let ignore_index = int(&at[0])?;
            let reduction = reduction(&at[1])?;
            let smoothing = float(&at[2])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_cross_entropy_loss::<&Tensor>(
                    tensor(args, 1)?,
                    None,
                    reduction,
                    ignore_index,
                    smoothing,
                )?)
            })
        }
        T::CrossEntropyBackward => {
            // PyTorch's own backward (log_softmax and nll_loss backwards), through autograd: the
            // forward is rerun on a detached leaf and differentiated with `grad_out`.
            let ignore_index = int(&at[0])?;
            let reduction = reduction(&at[1])?;
            Box::new(move |args| {
                let g = tensor(args, 0)?;
                let x = tensor(args, 1)?;
                let create_graph = differentiable_backward(&[g, x]);
                let leaf = if create_graph && x.requires_grad() {
                    x.shallow_clone()
                } else {
                    x.detach().set_requires_grad(true)
                };
                let grads = tch::with_grad(|| -> KResult<Vec<Tensor>> {
                    let loss = leaf.f_cross_entropy_loss::<&Tensor>(
                        tensor(args, 2)?,
                        None,
                        reduction,
                        ignore_index,
                        0.0,
                    )?;
                    let l = loss.f_mul(g)?.f_sum(loss.kind())?;
                    Ok(Tensor::f_run_backward(
                        &[l],
                        &[&leaf],
                        create_graph,
                        create_graph,
                    )?)
                })?;
                Ok(grads.into_iter().map(RtValue::Tensor).collect())
            })
        }
        T::Linear => Box::new(move |args| {
            one(tensor(args, 0)?.f_linear(tensor(args, 1)?, opt_tensor(args, 2)?)?)
        }),
        T::Matmul => Box::new(move |args| one(tensor(args, 0)?.f_matmul(tensor(args, 1)?)?)),
        T::Bmm => Box::new(move |args| one(tensor(args, 0)?.f_bmm(tensor(args, 1)?)?)),
        T::Addmm => {
            let (beta, alpha) = (opt_num(&at[0])?, opt_num(&at[1])?);
            Box::new(move |args| {
                let (a, m1, m2) = (tensor(args, 0)?, tensor(args, 1)?, tensor(args, 2)?);
                if beta.is_none() && alpha.is_none() {
                    return one(a.f_addmm(m1, m2)?);
                }
                // tch's addmm takes no beta and alpha: baddbmm over a batch of one is the same
                // product and epilogue (beta 0 ignores `a` as well).
                let one_ = Num::Int(1);
                let r = a.f_unsqueeze(0)?.f_baddbmm(
                    &m1.f_unsqueeze(0)?,
                    &m2.f_unsqueeze(0)?,
                    beta.unwrap_or(one_).scalar(),
                    alpha.unwrap_or(one_).scalar(),
                )?;
                one(r.f_squeeze_dim(0)?)
            })
        }
        T::Conv2d => {
            // An int is the same value for height and width, as ATen expands a one-element list.
            let pair = |a: &Attr| -> CResult<Vec<i64>> {
                match a {
                    Attr::Int(x) => Ok(vec![*x, *x]),
                    other => ints(other),
                }
            };
            let (stride, padding, dilation) = (pair(&at[0])?, pair(&at[1])?, pair(&at[2])?);
            let groups = int(&at[3])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_conv2d(
                    tensor(args, 1)?,
                    opt_tensor(args, 2)?,
                    stride.as_slice(),
                    padding.as_slice(),
                    dilation.as_slice(),
                    groups,
                )?)
            })
        }
        T::Embedding => {
            let padding_idx = opt_int(&at[0])?.unwrap_or(-1);
            Box::new(move |args| {
                one(Tensor::f_embedding(
                    tensor(args, 1)?,
                    tensor(args, 0)?,
                    padding_idx,
                    false,
                    false,
                )?)
            })
        }
        T::LayerNorm => {
            let ns = ints(&at[0])?;
            let eps = float(&at[1])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_layer_norm(
                    ns.as_slice(),
                    opt_tensor(args, 1)?,
                    opt_tensor(args, 2)?,
                    eps,
                    true,
                )?)
            })
        }
        T::RmsNorm => {
            let ns = ints(&at[0])?;
            let eps = opt_float(&at[1])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_rms_norm(ns.as_slice(), opt_tensor(args, 1)?, eps)?)
            })
        }
        T::Gelu => {
            let approximate = match &at[0] {
                Attr::Str(s) => s.clone(),
                other => {
                    return Err(CompileError::NamedAttr {
                        name: "approximate",
                        expected: "a string",
                        got: other.clone(),
                    })
                }
            };
            Box::new(move |args| one(tensor(args, 0)?.f_gelu(&approximate)?))
        }
        T::Silu => Box::new(move |args| one(tensor(args, 0)?.f_silu()?)),
        T::Sigmoid => {
            Box::new(move |args| one(tensor(args, 0)?.f_sigmoid()?.f_to_kind(out_kind)?))
        }
        T::Relu => Box::new(move |args| one(tensor(args, 0)?.f_relu()?)),
        T::Dropout => {
            let (p, training) = (float(&at[0])?, boolean(&at[1])?);
            Box::new(move |args| one(tensor(args, 0)?.f_dropout(p, training)?))
        }
        _ => return Ok(None),
    }))
}

/// Whether a backward kernel computed through autograd (attention's, cross entropy's) builds
/// its gradients differentiably: only when grad mode is on and an input requires grad, as an
/// eager op would record a graph. A plan run as the backward of a `torch.autograd.Function`
/// (thunder.jit's) runs in no-grad mode with saved tensors that still require grad and belong
/// to the graph being differentiated: differentiating through them from inside that backward
/// crashed libtorch's engine (BERT's cross entropy, issue 20).
pub(super) fn differentiable_backward(inputs: &[&Tensor]) -> bool {
    grad_mode_enabled() && inputs.iter().any(|t| t.requires_grad())
}

/// libtorch's thread-local grad mode (tch can set it but not read it).
fn grad_mode_enabled() -> bool {
    // SAFETY: `at_grad_set_enabled` sets the thread-local flag and returns the previous one;
    // it takes and returns plain ints. Setting it back leaves the state as it was.
    unsafe {
        let previous = torch_sys::at_grad_set_enabled(1);
        torch_sys::at_grad_set_enabled(previous);
        previous != 0
    }
}
