//! Collective ops over the ranks of one process group (`dist.all_reduce`, ...), with meta
//! functions.
//!
//! Every collective names the group's `world_size` (so that shapes are known when the trace is
//! built) and whether it is asynchronous. The result of an asynchronous collective is a
//! handle: nothing may read it except [`DistOp::Wait`], which returns the finished tensor. The
//! verifier enforces that, so an executor may launch the collective on a communication stream
//! and synchronize only at the wait.
//!
//! `all_gather` concatenates and `reduce_scatter` splits along dim 0, the layout NCCL works in.

use super::prims::ArgMeta;
use super::{attr_bool, attr_int, attr_str, op_enum, AttrKind as A, ParamKind as P, Signature};
use crate::error::{IrError, Result};
use crate::shape::Shape;
use crate::trace::Attr;
use crate::value::{TensorMeta, ValueType};

op_enum! {
    /// A collective operation (or the wait for an asynchronous one).
    pub enum DistOp in "dist" {
        AllReduce = "all_reduce", AllGather = "all_gather", ReduceScatter = "reduce_scatter",
        Broadcast = "broadcast", Wait = "wait",
    }
}

/// The reductions `all_reduce` and `reduce_scatter` accept (NCCL's `ncclSum`, `ncclAvg`,
/// `ncclMax`, `ncclMin`).
pub const REDUCE_OPS: [&str; 4] = ["sum", "avg", "max", "min"];

impl DistOp {
    /// Operands and attributes.
    pub fn signature(self) -> Signature {
        use DistOp::*;
        let s = |attrs| Signature {
            operands: &[("a", P::Tensor)],
            attrs,
            num_outputs: Some(1),
        };
        match self {
            AllReduce | ReduceScatter => s(&[
                ("op", A::Str),
                ("world_size", A::Int),
                ("async_op", A::Bool),
            ]),
            AllGather => s(&[("world_size", A::Int), ("async_op", A::Bool)]),
            Broadcast => s(&[
                ("root", A::Int),
                ("world_size", A::Int),
                ("async_op", A::Bool),
            ]),
            Wait => s(&[]),
        }
    }

    /// Whether a call with these attributes is asynchronous (its result must go to a wait).
    pub fn is_async(self, attrs: &[Attr]) -> bool {
        self != DistOp::Wait && matches!(attrs.last(), Some(Attr::Bool(true)))
    }

    /// The world size a call names (None for a wait).
    pub fn world_size(self, attrs: &[Attr]) -> Option<usize> {
        let i = match self {
            DistOp::AllReduce | DistOp::ReduceScatter | DistOp::Broadcast => 1,
            DistOp::AllGather => 0,
            DistOp::Wait => return None,
        };
        match attrs.get(i) {
            Some(Attr::Int(w)) => usize::try_from(*w).ok(),
            _ => None,
        }
    }
}

/// Meta function of a collective: the output type, or a typed error.
pub fn meta(op: DistOp, args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<Vec<ValueType>> {
    let name = format!("dist.{}", op.name());
    let n = name.as_str();
    let a = match args.first() {
        Some(ArgMeta::Tensor(t)) => *t,
        _ => return Err(IrError::invalid(n, "a must be a tensor")),
    };
    crate::ops::prims::check_operand_shapes(n, args)?;
    let world = |i: usize| -> Result<usize> {
        let w = attr_int(n, attrs, i)?;
        usize::try_from(w)
            .ok()
            .filter(|&w| w >= 1)
            .ok_or_else(|| IrError::invalid(n, format!("world_size={w} must be at least 1")))
    };
    let reduce = |i: usize| -> Result<()> {
        let r = attr_str(n, attrs, i)?;
        if REDUCE_OPS.contains(&r) {
            Ok(())
        } else {
            Err(IrError::invalid(
                n,
                format!("op={r:?} is not one of {}", REDUCE_OPS.join(", ")),
            ))
        }
    };
    let with_dim0 = |d0: usize| {
        let mut s = a.shape.sizes();
        s[0] = d0;
        ValueType::Tensor(TensorMeta {
            shape: Shape::new(s),
            dtype: a.dtype,
            device: a.device,
            requires_grad: false,
        })
    };
    let same = || {
        ValueType::Tensor(TensorMeta {
            requires_grad: false,
            ..a.clone()
        })
    };
    let out = match op {
        DistOp::AllReduce => {
            reduce(0)?;
            world(1)?;
            attr_bool(n, attrs, 2)?;
            same()
        }
        DistOp::Broadcast => {
            let root = attr_int(n, attrs, 0)?;
            let w = world(1)?;
            attr_bool(n, attrs, 2)?;
            if root < 0 || root as usize >= w {
                return Err(IrError::invalid(
                    n,
                    format!("root={root} is not a rank of a world of {w}"),
                ));
            }
            same()
        }
        DistOp::AllGather => {
            let w = world(0)?;
            attr_bool(n, attrs, 1)?;
            if a.rank() == 0 {
                return Err(IrError::invalid(
                    n,
                    "a is a scalar; gather tensors with at least one dim (dim 0 is concatenated)",
                ));
            }
            let d0 = a.shape.size(0).checked_mul(w).ok_or_else(|| {
                IrError::overflow(
                    n,
                    format!(
                        "dim 0 of size {} times world_size={w} does not fit",
                        a.shape.size(0)
                    ),
                )
            })?;
            with_dim0(d0)
        }
        DistOp::ReduceScatter => {
            reduce(0)?;
            let w = world(1)?;
            attr_bool(n, attrs, 2)?;
            if a.rank() == 0 || a.shape.size(0) % w != 0 {
                return Err(IrError::invalid(
                    n,
                    format!(
                        "a has shape {}: dim 0 must divide by world_size={w} (pad it first)",
                        a.shape
                    ),
                ));
            }
            with_dim0(a.shape.size(0) / w)
        }
        DistOp::Wait => same(),
    };
    crate::ops::prims::check_output_shape(n, &out)?;
    Ok(vec![out])
}

/// A count a Rust caller passes as `usize`, as the `int` attribute it becomes; one beyond i64
/// is an overflow error (an `as` cast would turn it negative and blame the wrong thing).
fn int_attr(op: DistOp, arg: &str, v: usize) -> Result<Attr> {
    i64::try_from(v).map(Attr::Int).map_err(|_| {
        IrError::overflow(
            format!("dist.{}", op.name()),
            format!("{arg}={v} is beyond i64::MAX"),
        )
    })
}

/// Collectives on the builder (each checks its operand and attributes like any op).
impl crate::TraceBuilder {
    fn dist1(&mut self, op: DistOp, a: crate::Value, attrs: Vec<Attr>) -> Result<crate::Value> {
        let out = self.call(crate::Op::Dist(op), vec![a.into()], attrs)?;
        out.first()
            .copied()
            .ok_or_else(|| IrError::invalid(format!("dist.{}", op.name()), "internal: no output"))
    }
    /// `dist.all_reduce(a, op, world_size, async_op)`
    pub fn all_reduce(
        &mut self,
        a: crate::Value,
        op: &str,
        world_size: usize,
        async_op: bool,
    ) -> Result<crate::Value> {
        let attrs = vec![
            Attr::Str(op.into()),
            int_attr(DistOp::AllReduce, "world_size", world_size)?,
            Attr::Bool(async_op),
        ];
        self.dist1(DistOp::AllReduce, a, attrs)
    }
    /// `dist.all_gather(a, world_size, async_op)`: concatenated along dim 0.
    pub fn all_gather(
        &mut self,
        a: crate::Value,
        world_size: usize,
        async_op: bool,
    ) -> Result<crate::Value> {
        let attrs = vec![
            int_attr(DistOp::AllGather, "world_size", world_size)?,
            Attr::Bool(async_op),
        ];
        self.dist1(DistOp::AllGather, a, attrs)
    }
    /// `dist.reduce_scatter(a, op, world_size, async_op)`: this rank's slice of dim 0.
    pub fn reduce_scatter(
        &mut self,
        a: crate::Value,
        op: &str,
        world_size: usize,
        async_op: bool,
    ) -> Result<crate::Value> {
        let attrs = vec![
            Attr::Str(op.into()),
            int_attr(DistOp::ReduceScatter, "world_size", world_size)?,
            Attr::Bool(async_op),
        ];
        self.dist1(DistOp::ReduceScatter, a, attrs)
    }
    /// `dist.broadcast(a, root, world_size, async_op)`
    pub fn broadcast(
        &mut self,
        a: crate::Value,
        root: usize,
        world_size: usize,
        async_op: bool,
    ) -> Result<crate::Value> {
        let attrs = vec![
            int_attr(DistOp::Broadcast, "root", root)?,
            int_attr(DistOp::Broadcast, "world_size", world_size)?,
            Attr::Bool(async_op),
        ];
        self.dist1(DistOp::Broadcast, a, attrs)
    }
    /// `dist.wait(handle)`: the finished result of an asynchronous collective.
    pub fn wait(&mut self, handle: crate::Value) -> Result<crate::Value> {
        self.dist1(DistOp::Wait, handle, vec![])
    }
}
