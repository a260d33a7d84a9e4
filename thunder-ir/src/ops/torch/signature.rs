//! The operands and attributes of the torch-level ops.

use super::*;
use crate::ops::{AttrKind, ParamKind};

impl TorchOp {
    /// Operands and attributes.
    pub fn signature(self) -> Signature {
        use TorchOp as T;
        let s = one;
        let class = self.info().class;
        if class == PrimClass::Unary {
            return s(&[("a", P::Tensor)], &[]);
        }
        if class == PrimClass::Binary {
            if matches!(self, T::Add | T::Sub) {
                return s(
                    &[("a", P::TensorOrNumber), ("b", P::TensorOrNumber)],
                    &[("alpha", A::OptNumber)],
                );
            }
            if !self.info().numbers {
                return s(&[("a", P::Tensor), ("b", P::Tensor)], &[]);
            }
            return s(&[("a", P::TensorOrNumber), ("b", P::TensorOrNumber)], &[]);
        }
        match self.info().family {
            Family::Elementwise | Family::Reduction => self.math_signature(),
            Family::Nn | Family::Composite => self.nn_signature(),
            Family::Indexing => self.indexing_signature(),
            _ => self.shape_signature(),
        }
    }

    /// Elementwise ops beyond one prim, and reductions.
    fn math_signature(self) -> Signature {
        use TorchOp as T;
        let s = one;
        const REDUCE: &[(&str, A)] = &[
            ("dim", A::OptInts),
            ("keepdim", A::Bool),
            ("dtype", A::OptDType),
        ];
        const VAR: &[(&str, A)] = &[
            ("dim", A::OptInts),
            ("correction", A::Float),
            ("keepdim", A::Bool),
        ];
        match self {
            T::Gelu => s(&[("a", P::Tensor)], &[("approximate", A::Str)]),
            T::Where => s(
                &[
                    ("condition", P::Tensor),
                    ("a", P::TensorOrNumber),
                    ("b", P::TensorOrNumber),
                ],
                &[],
            ),
            T::MaskedFill => s(
                &[
                    ("a", P::Tensor),
                    ("mask", P::Tensor),
                    ("value", P::TensorOrNumber),
                ],
                &[],
            ),
            T::Clamp => s(
                &[("a", P::Tensor)],
                &[("min", A::OptNumber), ("max", A::OptNumber)],
            ),
            T::Sum | T::Mean => s(&[("a", P::Tensor)], REDUCE),
            T::Amax | T::Amin => s(
                &[("a", P::Tensor)],
                &[("dim", A::OptInts), ("keepdim", A::Bool)],
            ),
            T::Var | T::Std => s(&[("a", P::Tensor)], VAR),
            T::Cumsum => s(
                &[("a", P::Tensor)],
                &[("dim", A::Int), ("dtype", A::OptDType)],
            ),
            T::Argmax | T::Argmin => s(
                &[("a", P::Tensor)],
                &[("dim", A::OptInt), ("keepdim", A::Bool)],
            ),
            _ => s(&[], &[]),
        }
    }

    /// Neural-network ops and composites.
    fn nn_signature(self) -> Signature {
        use TorchOp as T;
        let s = one;
        match self {
            T::Softmax | T::LogSoftmax => s(
                &[("a", P::Tensor)],
                &[("dim", A::Int), ("dtype", A::OptDType)],
            ),
            T::CrossEntropy => s(
                &[("input", P::Tensor), ("target", P::Tensor)],
                &[
                    ("ignore_index", A::Int),
                    ("reduction", A::Str),
                    ("label_smoothing", A::Float),
                ],
            ),
            T::CrossEntropyBackward => s(
                &[
                    ("grad_out", P::Tensor),
                    ("input", P::Tensor),
                    ("target", P::Tensor),
                ],
                &[("ignore_index", A::Int), ("reduction", A::Str)],
            ),
            T::RmsNorm => s(
                &[("a", P::Tensor), ("weight", P::OptTensor)],
                &[("normalized_shape", A::Ints), ("eps", A::OptFloat)],
            ),
            T::LayerNorm => s(
                &[
                    ("a", P::Tensor),
                    ("weight", P::OptTensor),
                    ("bias", P::OptTensor),
                ],
                &[("normalized_shape", A::Ints), ("eps", A::Float)],
            ),
            T::Dropout => s(
                &[("a", P::Tensor)],
                &[("p", A::Float), ("training", A::Bool)],
            ),
            T::Embedding => s(
                &[("a", P::Tensor), ("weight", P::Tensor)],
                &[("padding_idx", A::OptInt)],
            ),
            T::Linear => s(
                &[("a", P::Tensor), ("w", P::Tensor), ("bias", P::OptTensor)],
                &[],
            ),
            T::Matmul | T::Bmm => s(&[("a", P::Tensor), ("b", P::Tensor)], &[]),
            T::Conv2d => s(
                &[("a", P::Tensor), ("w", P::Tensor), ("bias", P::OptTensor)],
                &[
                    ("stride", A::IntOrInts),
                    ("padding", A::IntOrInts),
                    ("dilation", A::IntOrInts),
                    ("groups", A::Int),
                ],
            ),
            T::Addmm => s(
                &[("a", P::Tensor), ("mat1", P::Tensor), ("mat2", P::Tensor)],
                &[("beta", A::OptNumber), ("alpha", A::OptNumber)],
            ),
            T::ScaledDotProductAttention => s(
                &[
                    ("query", P::Tensor),
                    ("key", P::Tensor),
                    ("value", P::Tensor),
                    ("attn_mask", P::OptTensor),
                ],
                &[
                    ("dropout_p", A::Float),
                    ("is_causal", A::Bool),
                    ("scale", A::OptFloat),
                    ("enable_gqa", A::Bool),
                ],
            ),
            T::ScaledDotProductAttentionBackward => Signature {
                operands: &[
                    ("grad_out", P::Tensor),
                    ("query", P::Tensor),
                    ("key", P::Tensor),
                    ("value", P::Tensor),
                    ("attn_mask", P::OptTensor),
                ],
                attrs: &[
                    ("is_causal", A::Bool),
                    ("scale", A::OptFloat),
                    ("enable_gqa", A::Bool),
                ],
                num_outputs: Some(3),
            },
            T::Adamw => Signature {
                operands: &[
                    ("params", P::TensorList),
                    ("grads", P::TensorList),
                    ("exp_avgs", P::TensorList),
                    ("exp_avg_sqs", P::TensorList),
                    ("step", P::Tensor),
                ],
                attrs: &[
                    ("lr", A::Float),
                    ("beta1", A::Float),
                    ("beta2", A::Float),
                    ("eps", A::Float),
                    ("weight_decay", A::Float),
                    ("inplace", A::Bool),
                ],
                num_outputs: None,
            },
            _ => s(&[], &[]),
        }
    }

    /// Indexing ops.
    fn indexing_signature(self) -> Signature {
        use TorchOp as T;
        let s = one;
        match self {
            T::Gather | T::IndexSelect => s(
                &[("a", P::Tensor), ("index", P::Tensor)],
                &[("dim", A::Int)],
            ),
            _ => s(&[], &[]),
        }
    }

    /// Shape, conversion and creation ops.
    fn shape_signature(self) -> Signature {
        use TorchOp as T;
        let s = one;
        const CREATE: &[(&str, A)] = &[
            ("shape", A::Ints),
            ("dtype", A::OptDType),
            ("device", A::OptDevice),
        ];
        match self {
            T::Reshape | T::View | T::Expand => s(&[("a", P::Tensor)], &[("shape", A::Ints)]),
            T::Permute => s(&[("a", P::Tensor)], &[("dims", A::Ints)]),
            T::Transpose => s(&[("a", P::Tensor)], &[("dim0", A::Int), ("dim1", A::Int)]),
            T::Unsqueeze => s(&[("a", P::Tensor)], &[("dim", A::Int)]),
            T::Squeeze => s(&[("a", P::Tensor)], &[("dim", A::OptInts)]),
            T::Flatten => s(
                &[("a", P::Tensor)],
                &[("start_dim", A::Int), ("end_dim", A::Int)],
            ),
            T::Split => Signature {
                operands: &[("a", P::Tensor)],
                attrs: &[("split_size_or_sections", A::IntOrInts), ("dim", A::Int)],
                num_outputs: None,
            },
            T::Narrow => s(
                &[("a", P::Tensor)],
                &[("dim", A::Int), ("start", A::Int), ("length", A::Int)],
            ),
            T::Pad => s(
                &[("a", P::Tensor)],
                &[("pad", A::Ints), ("mode", A::Str), ("value", A::OptNumber)],
            ),
            T::Triu | T::Tril => s(&[("a", P::Tensor)], &[("diagonal", A::Int)]),
            T::RepeatInterleave => s(&[("a", P::Tensor)], &[("repeats", A::Int), ("dim", A::Int)]),
            T::Cat | T::Stack => s(&[("tensors", P::TensorList)], &[("dim", A::Int)]),
            T::To => s(
                &[("a", P::Tensor)],
                &[("dtype", A::OptDType), ("device", A::OptDevice)],
            ),
            T::Zeros | T::Ones => s(&[], CREATE),
            T::Full => s(
                &[],
                &[
                    ("shape", A::Ints),
                    ("fill_value", A::Number),
                    ("dtype", A::OptDType),
                    ("device", A::OptDevice),
                ],
            ),
            T::Arange => s(
                &[],
                &[
                    ("start", A::OptNumber),
                    ("end", A::Number),
                    ("step", A::OptNumber),
                    ("dtype", A::OptDType),
                    ("device", A::OptDevice),
                ],
            ),
            _ => s(&[], &[]),
        }
    }
}

/// A signature with one output.
fn one(
    operands: &'static [(&'static str, ParamKind)],
    attrs: &'static [(&'static str, AttrKind)],
) -> Signature {
    Signature {
        operands,
        attrs,
        num_outputs: Some(1),
    }
}
