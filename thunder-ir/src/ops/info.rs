//! The op table: what the passes and executors need to know about an op, declared once, in the
//! row that declares the op (see the `op_table!` declarations of [`PrimOp`](super::PrimOp) and
//! [`TorchOp`](super::TorchOp)).
//!
//! Every list a pass used to keep by hand (the prims with a VJP rule, the torch-level ops grad
//! keeps whole, autocast's lower-precision and float32 lists, the ops the torch executor calls
//! directly, the PyTorch names the Python front end translates) is derived from these rows.
//! opinfo-db checks each property against behaviour (`opinfo-db/tests/op_table.rs`).
//!
//! A row is a `const` expression built from a family constructor and modifiers:
//!
//! ```
//! use thunder_ir::ops::info::{Autocast, Family, OpInfo, TorchGrad};
//! const ROW: OpInfo = OpInfo::nn().grad(TorchGrad::Whole).autocast(Autocast::Float32);
//! assert_eq!(ROW.family, Family::Nn);
//! ```

use super::prims::{PrimClass, PrimOp};
use crate::promotion::ElementwisePromotion;

/// The family an op's rules are filed under: grad, jvp, vmap, decompositions and executor kernels
/// keep one file per family, so one family's rules for every pass can be read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Elementwise math, comparisons, bitwise ops, selection (`where`, `clamp`, `masked_fill`).
    Elementwise,
    /// Reductions (`sum`, `amax`, `var`, `argmax`, ...).
    Reduction,
    /// Shapes, views, layout and conversion (`reshape`, `broadcast_in_dim`, `cat`, `to`, ...).
    Shape,
    /// Indexing (`take`, `gather`, `index_add`, ...).
    Indexing,
    /// Neural-network ops: matrix products, embeddings, norms, softmax, attention.
    Nn,
    /// Composites of several steps: losses, optimizers.
    Composite,
    /// Tensor creation, random numbers included.
    Creation,
    /// Writes into an operand.
    Memory,
    /// ATen operators called by name (`prims.aten`, see [`crate::ops::aten`]).
    Opaque,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 9] = [
        Family::Elementwise,
        Family::Reduction,
        Family::Shape,
        Family::Indexing,
        Family::Nn,
        Family::Composite,
        Family::Creation,
        Family::Memory,
        Family::Opaque,
    ];
    /// The lower-case name (`"elementwise"`), as in file names.
    pub fn name(self) -> &'static str {
        match self {
            Family::Elementwise => "elementwise",
            Family::Reduction => "reduction",
            Family::Shape => "shape",
            Family::Indexing => "indexing",
            Family::Nn => "nn",
            Family::Composite => "composite",
            Family::Creation => "creation",
            Family::Memory => "memory",
            Family::Opaque => "opaque",
        }
    }
}

/// How `torch.autocast` treats an op (its CUDA lists, for the ops thunder has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Autocast {
    /// Runs on what it is given.
    Follow,
    /// Runs in the autocast dtype (`lower_precision_fp`: matrix products, attention).
    LowerPrecision,
    /// Runs in float32 (`fp32`: numerically sensitive ops).
    Float32,
}

/// How the grad transform differentiates a torch-level op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TorchGrad {
    /// Through its decomposition: the prims' VJP rules.
    Decomposition,
    /// Whole, with a rule of its own (the backward uses fewer, fused kernels); the rule may still
    /// decline a call (attention with dropout) and fall back to the decomposition.
    Whole,
}

/// The properties of one op. Prims use `class` and `vjp`; torch-level ops use `grad`, `direct`
/// and `pytorch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpInfo {
    /// The family its rules are filed under.
    pub family: Family,
    /// The class for signatures and meta functions. Torch-level ops: [`PrimClass::Unary`] and
    /// [`PrimClass::Binary`] mark the plain elementwise ops with the standard signatures (one
    /// tensor; two tensors or numbers), the rest are [`PrimClass::Other`].
    pub class: PrimClass,
    /// Prims: whether grad has a VJP rule for it (a prim without one is not differentiable).
    pub vjp: bool,
    /// Torch-level ops: how grad differentiates it.
    pub grad: TorchGrad,
    /// What autocast does with it.
    pub autocast: Autocast,
    /// Prims: whether the fusion executor has a CUDA formula for it (it still checks dtypes and
    /// shapes per call).
    pub fusible: bool,
    /// Torch-level ops: whether the torch executor runs it with one libtorch call by default,
    /// rather than through its decomposition (where one call beats the decomposition).
    pub direct: bool,
    /// Cheap to redo: the backward may recompute it from its operands instead of saving its
    /// output (memory-bound and deterministic: elementwise math, reductions, layout changes,
    /// constants, whole normalizations; not matrix products, indexing, attention or random ops).
    pub recompute: bool,
    /// Random: never deduplicated or reordered by passes.
    pub random: bool,
    /// Writes into an operand.
    pub inplace: bool,
    /// Torch-level elementwise ops that are one prim: the prim, after type promotion of this kind
    /// (`None`: the op has a decomposition of its own).
    pub prim: Option<(PrimOp, ElementwisePromotion)>,
    /// Torch-level binary ops that are one prim: 16-bit float operands are computed in float32
    /// (and the result rounded once), as PyTorch's kernels do.
    pub upcast: bool,
    /// Torch-level binary ops: whether an operand may be a Python number (`torch.add(x, 2)`);
    /// `false` where PyTorch takes tensors only (`torch.maximum`).
    pub numbers: bool,
    /// Torch-level ops: the PyTorch callables the Python front end translates into it, as
    /// Python paths (`torch.add`, `torch.Tensor.add`, `operator.add`,
    /// `torch.nn.functional.softmax`).
    pub pytorch: &'static [&'static str],
}

impl OpInfo {
    const fn new(family: Family, class: PrimClass) -> OpInfo {
        OpInfo {
            family,
            class,
            vjp: false,
            grad: TorchGrad::Decomposition,
            autocast: Autocast::Follow,
            fusible: false,
            direct: false,
            recompute: false,
            random: false,
            inplace: false,
            prim: None,
            upcast: false,
            numbers: true,
            pytorch: &[],
        }
    }
    /// A unary elementwise op (prims: class [`PrimClass::Unary`]).
    pub const fn unary() -> OpInfo {
        OpInfo::new(Family::Elementwise, PrimClass::Unary)
    }
    /// A binary elementwise op.
    pub const fn binary() -> OpInfo {
        OpInfo::new(Family::Elementwise, PrimClass::Binary)
    }
    /// A ternary elementwise op (`where`).
    pub const fn ternary() -> OpInfo {
        OpInfo::new(Family::Elementwise, PrimClass::Ternary)
    }
    /// Another elementwise op (torch-level: activations, selection).
    pub const fn elementwise() -> OpInfo {
        OpInfo::new(Family::Elementwise, PrimClass::Other)
    }
    /// A reduction over `dims` (prims: class [`PrimClass::Reduction`]).
    pub const fn reduction() -> OpInfo {
        OpInfo::new(Family::Reduction, PrimClass::Reduction)
    }
    /// A reduction-like op with its own signature (`argmax`).
    pub const fn index_reduction() -> OpInfo {
        OpInfo::new(Family::Reduction, PrimClass::Other)
    }
    /// A shape, view, layout or conversion op.
    pub const fn shape() -> OpInfo {
        OpInfo::new(Family::Shape, PrimClass::Other)
    }
    /// An indexing op.
    pub const fn indexing() -> OpInfo {
        OpInfo::new(Family::Indexing, PrimClass::Other)
    }
    /// A neural-network op.
    pub const fn nn() -> OpInfo {
        OpInfo::new(Family::Nn, PrimClass::Other)
    }
    /// A composite (loss, optimizer step).
    pub const fn composite() -> OpInfo {
        OpInfo::new(Family::Composite, PrimClass::Other)
    }
    /// A creation op.
    pub const fn creation() -> OpInfo {
        OpInfo::new(Family::Creation, PrimClass::Other)
    }
    /// An op that writes into an operand.
    pub const fn memory() -> OpInfo {
        let mut i = OpInfo::new(Family::Memory, PrimClass::Other);
        i.inplace = true;
        i
    }
    /// An ATen operator called by name.
    pub const fn opaque() -> OpInfo {
        OpInfo::new(Family::Opaque, PrimClass::Other)
    }
    /// Prims: grad has a VJP rule for it.
    pub const fn vjp(mut self) -> OpInfo {
        self.vjp = true;
        self
    }
    /// Torch-level ops: how grad differentiates it.
    pub const fn grad(mut self, g: TorchGrad) -> OpInfo {
        self.grad = g;
        self
    }
    /// What autocast does with it.
    pub const fn autocast(mut self, a: Autocast) -> OpInfo {
        self.autocast = a;
        self
    }
    /// Prims: the fusion executor has a formula for it.
    pub const fn fuse(mut self) -> OpInfo {
        self.fusible = true;
        self
    }
    /// Torch-level ops: the torch executor calls libtorch for it by default.
    pub const fn direct(mut self) -> OpInfo {
        self.direct = true;
        self
    }
    /// The backward may recompute it rather than save its output.
    pub const fn recompute(mut self) -> OpInfo {
        self.recompute = true;
        self
    }
    /// It draws random numbers.
    pub const fn random(mut self) -> OpInfo {
        self.random = true;
        self
    }
    /// Torch-level elementwise ops: the op is `prim` after type promotion of kind `promotion`.
    pub const fn prim(mut self, prim: PrimOp, promotion: ElementwisePromotion) -> OpInfo {
        self.prim = Some((prim, promotion));
        self
    }
    /// Torch-level binary ops: 16-bit floats are computed in float32.
    pub const fn upcast(mut self) -> OpInfo {
        self.upcast = true;
        self
    }
    /// Torch-level binary ops: the operands are tensors, not Python numbers.
    pub const fn tensors_only(mut self) -> OpInfo {
        self.numbers = false;
        self
    }
    /// Torch-level ops: the PyTorch callables translated into it.
    pub const fn pytorch(mut self, names: &'static [&'static str]) -> OpInfo {
        self.pytorch = names;
        self
    }
}
