//! proptest strategies over an entry's samples.
//!
//! Every entry's strategy draws one of its listed samples with a random seed (random values).
//! Elementwise entries add random shapes on top: a listed sample is taken as a template (its
//! numbers, dtypes, domains and attributes are kept) and its tensors get a random shape of rank
//! 0 to 4 with sizes 0 to 4. Prims do not broadcast, so their tensors share that shape; for
//! torch-level ops each tensor gets a shape that broadcasts to it (leading dims dropped, some
//! sizes set to 1).

use crate::entry::OpEntry;
use crate::sample::{mix, Sample, SampleArg};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use thunder_ir::ops::info::Family;
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{DType, Device, Op, TorchOp};

/// How an elementwise op's tensor operands relate to each other's shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elementwise {
    /// All tensors have one shape (prims).
    SameShape,
    /// Tensors broadcast against each other (torch-level ops).
    Broadcast,
}

/// Whether `op` is elementwise, and how it treats shapes.
pub fn elementwise(op: Op) -> Option<Elementwise> {
    match op {
        Op::Prim(p) => matches!(
            p.class(),
            PrimClass::Unary | PrimClass::Binary | PrimClass::Ternary
        )
        .then_some(Elementwise::SameShape),
        Op::Dist(_) => None,
        // Every torch-level op of the elementwise family broadcasts its operands together,
        // except masked_fill, whose mask broadcasts to `a`'s shape and not the other way.
        Op::Torch(t) => (t.info().family == Family::Elementwise && t != TorchOp::MaskedFill)
            .then_some(Elementwise::Broadcast),
    }
}

/// Per tensor: how many leading dims to drop and which dims to set to 1 (bit mask).
type Reshaping = Vec<(usize, u8)>;

fn reshape(sample: &mut Sample, out: &[usize], how: &Reshaping, mode: Elementwise, nc: bool) {
    let mut k = 0;
    let mut apply = |t: &mut crate::TensorSpec| {
        let (drop, ones) = how.get(k).copied().unwrap_or((0, 0));
        k += 1;
        let mut shape = out.to_vec();
        if mode == Elementwise::Broadcast {
            shape = shape[drop.min(shape.len())..].to_vec();
            for (i, s) in shape.iter_mut().enumerate() {
                if ones & (1 << i) != 0 {
                    *s = 1;
                }
            }
        }
        t.noncontiguous = nc && !shape.is_empty();
        t.shape = shape;
    };
    for a in &mut sample.args {
        match a {
            SampleArg::Tensor(t) => apply(t),
            SampleArg::List(l) => l.iter_mut().for_each(&mut apply),
            _ => {}
        }
    }
}

fn reseed(sample: &mut Sample, seed: u64) {
    sample.seed = seed;
    let mut k = 0;
    let mut set = |t: &mut crate::TensorSpec| {
        k += 1;
        t.seed = mix(seed, k);
    };
    for a in &mut sample.args {
        match a {
            SampleArg::Tensor(t) => set(t),
            SampleArg::List(l) => l.iter_mut().for_each(&mut set),
            _ => {}
        }
    }
}

impl OpEntry {
    /// A strategy over this entry's cases on `device` with `dtype`: the listed samples with
    /// random seeds and, for elementwise ops, random (broadcastable) shapes. `None` when no
    /// sample applies to `dtype`.
    pub fn strategy(&self, device: Device, dtype: DType) -> Option<BoxedStrategy<Sample>> {
        let listed = self.samples(device, dtype, 0);
        if listed.is_empty() {
            return None;
        }
        let plain = (proptest::sample::select(listed.clone()), any::<u64>())
            .prop_map(|(mut s, seed)| {
                reseed(&mut s, seed);
                s
            })
            .boxed();
        let Some(mode) = elementwise(self.op) else {
            return Some(plain);
        };
        let shaped = (
            proptest::sample::select(listed),
            proptest::collection::vec(0usize..=4, 0..=4),
            proptest::collection::vec((0usize..=4, any::<u8>()), 3),
            any::<bool>(),
            any::<u64>(),
        )
            .prop_map(move |(mut s, out, how, nc, seed)| {
                reshape(&mut s, &out, &how, mode, nc);
                reseed(&mut s, seed);
                s
            })
            .boxed();
        Some(prop_oneof![1 => plain, 3 => shaped].boxed())
    }
}
