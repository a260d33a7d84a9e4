//! Shapes, dimensions and broadcasting.

use crate::error::{IrError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest element count a tensor may have, and so the largest size: PyTorch's sizes and
/// element counts are `int64`. See [`Shape::checked_numel`].
pub const MAX_NUMEL: usize = i64::MAX as usize;

/// The size of one dimension.
///
/// Sizes are concrete today. The type is kept apart from `usize` so that symbolic sizes can be
/// added later (as a new representation behind the same type) without rewriting every meta
/// function: code asks a `Dim` for its value instead of assuming it is an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dim(usize);

impl Dim {
    /// A dimension of known size.
    pub const fn new(size: usize) -> Self {
        Dim(size)
    }
    /// The concrete size.
    pub const fn value(self) -> usize {
        self.0
    }
}

impl From<usize> for Dim {
    fn from(size: usize) -> Self {
        Dim(size)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The shape of a tensor: one [`Dim`] per dimension. A 0-dim tensor has an empty shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A shape from concrete sizes.
    pub fn new(sizes: impl IntoIterator<Item = usize>) -> Self {
        Shape(sizes.into_iter().map(Dim::new).collect())
    }
    /// The 0-dim shape.
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// The concrete sizes.
    pub fn sizes(&self) -> Vec<usize> {
        self.0.iter().map(|d| d.value()).collect()
    }
    /// Size of dimension `i` (which must be in range).
    pub fn size(&self, i: usize) -> usize {
        self.0[i].value()
    }
    /// Product of the sizes (1 for a 0-dim shape).
    ///
    /// Exact for the shape of every value of a trace or a builder: those pass
    /// [`Shape::checked_numel`] when they are made. For any other shape the product saturates
    /// at `usize::MAX` instead of wrapping or panicking.
    pub fn numel(&self) -> usize {
        self.0
            .iter()
            .fold(1usize, |acc, d| acc.saturating_mul(d.value()))
    }
    /// The element count, if this shape can be a tensor's: the product of its non-zero sizes is
    /// at most [`MAX_NUMEL`]; `None` otherwise.
    ///
    /// The non-zero product is bounded, not only the element count, so that the product of any
    /// subset of the sizes, in any order (a stride, a flattened dim, the count of a reduction),
    /// fits as well, also in a shape with a 0 dim. Meta functions rely on this to multiply the
    /// sizes of their operands without checks.
    pub fn checked_numel(&self) -> Option<usize> {
        let mut nonzero: usize = 1;
        let mut empty = false;
        for d in &self.0 {
            match d.value() {
                0 => empty = true,
                x => nonzero = nonzero.checked_mul(x).filter(|&p| p <= MAX_NUMEL)?,
            }
        }
        Some(if empty { 0 } else { nonzero })
    }
    /// [`Shape::checked_numel`] as a typed error: [`IrError::Overflow`] naming `op` and `what`
    /// (what has this shape, printed before it: `input x of shape`, `the result shape`).
    pub fn check_numel(&self, op: &str, what: &str) -> Result<usize> {
        self.checked_numel().ok_or_else(|| {
            IrError::overflow(
                op,
                format!("{what} {self}: its sizes multiply to more than {MAX_NUMEL} (i64::MAX)"),
            )
        })
    }
    /// The dimensions.
    pub fn dims(&self) -> &[Dim] {
        &self.0
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(sizes: [usize; N]) -> Self {
        Shape::new(sizes)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(sizes: Vec<usize>) -> Self {
        Shape::new(sizes)
    }
}

impl From<&[usize]> for Shape {
    fn from(sizes: &[usize]) -> Self {
        Shape::new(sizes.iter().copied())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// PyTorch broadcasting of two shapes: align from the right; sizes must match or one be 1.
pub fn broadcast_shapes(op: &str, a: &Shape, b: &Shape) -> Result<Shape> {
    let rank = a.rank().max(b.rank());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        // i counts from the left of the result; fetch the aligned sizes (1 when absent).
        let get = |s: &Shape| {
            let offset = rank - s.rank();
            if i < offset {
                1
            } else {
                s.size(i - offset)
            }
        };
        let (x, y) = (get(a), get(b));
        let size = match (x, y) {
            _ if x == y => x,
            (1, _) => y,
            (_, 1) => x,
            _ => {
                return Err(IrError::Broadcast {
                    op: op.to_string(),
                    lhs: a.to_string(),
                    rhs: b.to_string(),
                    dim: i,
                    lhs_size: x,
                    rhs_size: y,
                })
            }
        };
        out.push(Dim::new(size));
    }
    Ok(Shape(out))
}

/// Turns a possibly negative dimension index into `0..rank`, as PyTorch's `dim` arguments do.
///
/// For a 0-dim tensor PyTorch accepts dims `0` and `-1` (it treats the tensor as rank 1 for
/// wrapping); pass `rank.max(1)` where that is the desired behaviour.
pub fn canonicalize_dim(op: &str, arg: &str, dim: i64, rank: usize) -> Result<usize> {
    // A 0-dim tensor wraps dims as if it had rank 1, as PyTorch does.
    let wrap = (rank as i64).max(1);
    let d = if dim < 0 { dim + wrap } else { dim };
    if d < 0 || d >= wrap {
        return Err(IrError::invalid(
            op,
            format!(
                "{arg}={dim} is out of range for a tensor of rank {rank} (expected a value in [{}, {}])",
                -wrap,
                wrap - 1
            ),
        ));
    }
    Ok(d as usize)
}

/// [`canonicalize_dim`] for a list of dims, also rejecting repeats.
pub fn canonicalize_dims(op: &str, arg: &str, dims: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let c = canonicalize_dim(op, arg, d, rank)?;
        if out.contains(&c) {
            return Err(IrError::invalid(
                op,
                format!("{arg}={dims:?} names dim {c} more than once"),
            ));
        }
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_torch() {
        let s = |v: &[usize]| Shape::from(v);
        assert_eq!(
            broadcast_shapes("t", &s(&[5, 1, 4]), &s(&[3, 1])).unwrap(),
            s(&[5, 3, 4])
        );
        assert_eq!(
            broadcast_shapes("t", &s(&[]), &s(&[2, 3])).unwrap(),
            s(&[2, 3])
        );
        assert_eq!(
            broadcast_shapes("t", &s(&[0, 1]), &s(&[1, 7])).unwrap(),
            s(&[0, 7])
        );
        assert_eq!(broadcast_shapes("t", &s(&[1]), &s(&[0])).unwrap(), s(&[0]));
        let e = broadcast_shapes("ltorch.add", &s(&[2, 3]), &s(&[4])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ltorch.add: shapes [2, 3] and [4] do not broadcast: dim 1 has sizes 3 and 4"
        );
        assert!(broadcast_shapes("t", &s(&[0]), &s(&[2])).is_err());
    }

    #[test]
    fn dims_wrap_like_torch() {
        assert_eq!(canonicalize_dim("o", "dim", -1, 3).unwrap(), 2);
        assert_eq!(canonicalize_dim("o", "dim", 0, 0).unwrap(), 0);
        assert_eq!(canonicalize_dim("o", "dim", -1, 0).unwrap(), 0);
        let e = canonicalize_dim("ltorch.sum", "dim", 3, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ltorch.sum: dim=3 is out of range for a tensor of rank 3 (expected a value in [-3, 2])"
        );
        assert!(canonicalize_dim("o", "dim", -4, 3).is_err());
        assert!(canonicalize_dims("o", "dims", &[0, -2], 2).is_err());
    }
}
