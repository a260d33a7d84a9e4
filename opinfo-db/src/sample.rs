//! Concrete samples: an entry's [`SampleSpec`]s resolved for one device and dtype, with a seed
//! for every tensor, ready to be built as a one-op trace (here) and run against libtorch (by
//! the conformance tests, which make the tensors from the [`TensorSpec`]s).

use crate::entry::{ArgSpec, AttrSpec, OpEntry, SampleSpec, TensorTemplate};
use std::fmt;
use thunder_ir::{Arg, Attr, DType, Device, IrError, Op, TensorMeta, Trace, TraceBuilder, Value};

/// A tensor input of a sample: everything needed to make it, deterministically.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Sizes; empty for a 0-dim tensor.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Where it lives.
    pub device: Device,
    /// Explicit value range, if the YAML gives one (see [`TensorSpec::value_range`]).
    pub domain: Option<(f64, f64)>,
    /// Whether to make it non-contiguous (for example by allocating the last dim twice as large
    /// and taking every other element).
    pub noncontiguous: bool,
    /// The seed of its values.
    pub seed: u64,
}

impl TensorSpec {
    /// The thunder-ir metadata of the tensor.
    pub fn meta(&self) -> TensorMeta {
        TensorMeta::new(self.dtype, self.shape.clone()).on(self.device)
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// The range to draw values from: the explicit domain, or the default of the dtype, after
    /// `torch.testing.make_tensor`: `[-9, 9]` for floating and complex dtypes (each part),
    /// `[-9, 10)` for signed integers, `[0, 10)` for uint8, `[0, 2)` for bool. Integer ranges
    /// are half-open, floating ranges closed.
    pub fn value_range(&self) -> (f64, f64) {
        if let Some(d) = self.domain {
            return d;
        }
        match self.dtype {
            DType::Bool => (0.0, 2.0),
            DType::U8 => (0.0, 10.0),
            d if d.is_integer() => (-9.0, 10.0),
            _ => (-9.0, 9.0),
        }
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.meta())?;
        if let Some((lo, hi)) = self.domain {
            write!(f, " in [{lo}, {hi}]")?;
        }
        if self.noncontiguous {
            f.write_str(" noncontiguous")?;
        }
        Ok(())
    }
}

/// An operand of a sample.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleArg {
    /// A tensor input.
    Tensor(TensorSpec),
    /// A list of tensor inputs.
    List(Vec<TensorSpec>),
    /// An `int` literal.
    Int(i64),
    /// A `float` literal.
    Float(f64),
    /// A `bool` literal.
    Bool(bool),
    /// `None`.
    None,
}

/// One case: an op, its operands and attributes, for one device and dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The op.
    pub op: Op,
    /// The index of the sample in the entry's `samples` (for error inputs, in `error_inputs`).
    pub index: usize,
    /// The device under test.
    pub device: Device,
    /// The dtype under test.
    pub dtype: DType,
    /// Operands in signature order.
    pub args: Vec<SampleArg>,
    /// Attributes in signature order, as thunder-ir takes them.
    pub attrs: Vec<Attr>,
    /// The seed the tensor seeds were derived from.
    pub seed: u64,
}

impl Sample {
    /// The tensor inputs in order (list elements flattened): the trace's `a0, a1, ...`.
    pub fn tensors(&self) -> Vec<&TensorSpec> {
        let mut out = Vec::new();
        for a in &self.args {
            match a {
                SampleArg::Tensor(t) => out.push(t),
                SampleArg::List(l) => out.extend(l.iter()),
                _ => {}
            }
        }
        out
    }

    /// The thunder-ir operands, given one value per tensor input (in [`Sample::tensors`] order).
    pub fn ir_args(&self, inputs: &[Value]) -> Result<Vec<Arg>, IrError> {
        let mut next = inputs.iter().copied();
        let mut take = || {
            next.next().ok_or_else(|| {
                IrError::invalid(
                    self.op.qualified_name(),
                    format!(
                        "the sample has more tensors than the {} inputs given",
                        inputs.len()
                    ),
                )
            })
        };
        self.args
            .iter()
            .map(|a| {
                Ok(match a {
                    SampleArg::Tensor(_) => Arg::Value(take()?),
                    SampleArg::List(l) => {
                        Arg::List(l.iter().map(|_| take()).collect::<Result<_, _>>()?)
                    }
                    SampleArg::Int(i) => Arg::Int(*i),
                    SampleArg::Float(f) => Arg::Float(*f),
                    SampleArg::Bool(b) => Arg::Bool(*b),
                    SampleArg::None => Arg::None,
                })
            })
            .collect()
    }

    /// Builds the one-op trace of the sample with [`TraceBuilder::call`]: inputs `a0, a1, ...`
    /// in [`Sample::tensors`] order, the op's outputs as the trace's outputs.
    pub fn build_trace(&self) -> Result<Trace, IrError> {
        let name = self.op.qualified_name().replace('.', "_");
        let mut b = TraceBuilder::new(name);
        let inputs = self
            .tensors()
            .iter()
            .enumerate()
            .map(|(i, t)| b.input(&format!("a{i}"), t.meta()))
            .collect::<Result<Vec<_>, _>>()?;
        let args = self.ir_args(&inputs)?;
        let outputs = b.call(self.op, args, self.attrs.clone())?;
        b.build(&outputs)
    }

    /// A short id for test names and messages: `ltorch.softmax/2/cpu/f32`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.op.qualified_name(),
            self.index,
            self.device,
            self.dtype
        )
    }
}

impl fmt::Display for Sample {
    /// `ltorch.softmax sample 2 (cpu, f32): a0=cpu f32[2, 3] noncontiguous; dim=1, dtype=None`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sample {} ({}, {}):",
            self.op.qualified_name(),
            self.index,
            self.device,
            self.dtype
        )?;
        let mut k = 0;
        let mut sep = " ";
        for a in &self.args {
            f.write_str(sep)?;
            sep = ", ";
            match a {
                SampleArg::Tensor(t) => {
                    write!(f, "a{k}={t}")?;
                    k += 1;
                }
                SampleArg::List(l) => {
                    f.write_str("[")?;
                    for (j, t) in l.iter().enumerate() {
                        if j > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "a{k}={t}")?;
                        k += 1;
                    }
                    f.write_str("]")?;
                }
                SampleArg::Int(i) => write!(f, "{i}")?,
                SampleArg::Float(x) => write!(f, "{x:?}")?,
                SampleArg::Bool(b) => f.write_str(if *b { "True" } else { "False" })?,
                SampleArg::None => f.write_str("None")?,
            }
        }
        let sig = self.op.signature();
        let mut sep = "; ";
        for ((name, _), a) in sig.attrs.iter().zip(&self.attrs) {
            write!(f, "{sep}{name}={}", attr_text(a))?;
            sep = ", ";
        }
        Ok(())
    }
}

fn attr_text(a: &Attr) -> String {
    match a {
        Attr::None => "None".into(),
        Attr::Int(i) => i.to_string(),
        Attr::Float(x) => format!("{x:?}"),
        Attr::Bool(b) => if *b { "True" } else { "False" }.into(),
        Attr::Str(s) => format!("{s:?}"),
        Attr::Ints(v) => format!("{v:?}"),
        Attr::IntLists(v) => format!("{v:?}"),
        Attr::DType(d) => d.to_string(),
        Attr::Device(d) => format!("{:?}", d.to_string()),
    }
}

/// splitmix64: a well-mixed 64-bit hash step, stable across platforms and Rust versions (unlike
/// `std`'s hashers), so seeds mean the same everywhere.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a string, for mixing names into seeds.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn device_code(d: Device) -> u64 {
    match d {
        Device::Cpu => 0,
        Device::Cuda(i) => 1 + u64::from(i),
    }
}

/// The seed of sample `index` of `op` on `device` with `dtype`, derived from `seed`.
pub fn sample_seed(seed: u64, op: Op, index: usize, device: Device, dtype: DType) -> u64 {
    let h = mix(seed, fnv(&op.qualified_name()));
    let h = mix(h, index as u64);
    let h = mix(h, device_code(device));
    mix(h, fnv(dtype.short_name()))
}

fn resolve_tensor(t: &TensorTemplate, device: Device, dtype: DType, seed: u64) -> TensorSpec {
    TensorSpec {
        shape: t.shape.clone(),
        dtype: t.dtype.resolve(dtype),
        device,
        domain: t.domain,
        noncontiguous: t.noncontiguous,
        seed,
    }
}

/// The Python number of the type of `dtype` that stands for `x`.
fn scalar(x: f64, dtype: DType) -> SampleArg {
    if dtype.is_bool() {
        SampleArg::Bool(x != 0.0)
    } else if dtype.is_integer() {
        SampleArg::Int(x.trunc() as i64)
    } else {
        SampleArg::Float(x)
    }
}

/// Resolves one spec for a device and dtype; tensor seeds are derived from `seed`.
pub fn resolve(
    op: Op,
    index: usize,
    spec: &SampleSpec,
    device: Device,
    dtype: DType,
    seed: u64,
) -> Sample {
    let sseed = sample_seed(seed, op, index, device, dtype);
    let mut k = 0u64;
    let mut next_seed = || {
        k += 1;
        mix(sseed, k)
    };
    let args = spec
        .args
        .iter()
        .map(|a| match a {
            ArgSpec::Tensor(t) => SampleArg::Tensor(resolve_tensor(t, device, dtype, next_seed())),
            ArgSpec::List(l) => SampleArg::List(
                l.iter()
                    .map(|t| resolve_tensor(t, device, dtype, next_seed()))
                    .collect(),
            ),
            ArgSpec::Int(i) => SampleArg::Int(*i),
            ArgSpec::Float(f) => SampleArg::Float(*f),
            ArgSpec::Bool(b) => SampleArg::Bool(*b),
            ArgSpec::Scalar(x) => scalar(*x, dtype),
            ArgSpec::None => SampleArg::None,
        })
        .collect();
    let attrs = spec
        .attrs
        .iter()
        .map(|a: &AttrSpec| a.resolve(device, dtype))
        .collect();
    Sample {
        op,
        index,
        device,
        dtype,
        args,
        attrs,
        seed: sseed,
    }
}

impl OpEntry {
    /// The entry's samples for `device` and `dtype`, deterministic from `seed`: one per sample
    /// spec that applies to `dtype` (whether or not the entry lists `dtype` for the device: see
    /// [`OpEntry::supports`] and [`OpEntry::cases`] for the listed ones).
    pub fn samples(&self, device: Device, dtype: DType, seed: u64) -> Vec<Sample> {
        self.samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.applies_to(dtype))
            .map(|(i, s)| resolve(self.op, i, s, device, dtype, seed))
            .collect()
    }

    /// Every listed case on `device`: each supported dtype times each sample that applies to
    /// it, with the skip that covers it (if any).
    pub fn cases(&self, device: Device, seed: u64) -> Vec<(Sample, Option<&crate::Skip>)> {
        let kind = crate::DeviceKind::of(device);
        self.dtypes(kind)
            .iter()
            .flat_map(|&d| self.samples(device, d, seed))
            .map(|s| {
                let skip = self.skip_for(kind, s.dtype, s.index);
                (s, skip)
            })
            .collect()
    }

    /// The error inputs as samples (index = position in `error_inputs`), on `device`.
    pub fn error_samples(&self, device: Device, seed: u64) -> Vec<(Sample, &crate::ErrorInput)> {
        self.error_inputs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let s = resolve(self.op, i, &e.sample, device, e.dtype, mix(seed, 0xE77));
                (s, e)
            })
            .collect()
    }
}
