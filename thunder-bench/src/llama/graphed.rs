//! `--modes thunder-graphs` (`--cuda-graphs`): the compiled training step - forward, backward,
//! the step counter and AdamW - captured into one CUDA graph after its first run, then
//! replayed with one launch per step.
//!
//! The first step runs normally (it also compiles and loads every kernel). Then one step is
//! captured, not run, on static copies of the token ids and targets; the RoPE tables (the
//! model's buffers: the same tensors every step), the parameters, moments and step counter are
//! read and updated in place, so they are static by construction. Each later step copies its
//! ids and targets into the static copies, as a training loop with a new batch per step must,
//! and replays (another RoPE table tensor is an error); the loss it returns is
//! the graph's own tensor, rewritten by the next replay. A step that cannot be captured runs
//! uncaptured, and the reason is printed once.

use super::train::{Batch, Compiled, Trainer};
use super::BenchError;
use tch::Tensor;
use thunder_executors::graphs::{Captured, RefillError, ReplayError};
use thunder_ir::Device;

/// The compiled step, replayed from a CUDA graph after the first step.
pub struct GraphedStep {
    inner: Compiled,
    device: Device,
    state: State,
}

enum State {
    Fresh,
    /// Captured on the batch's tensors (idx, targets, cos, sin); returns the loss.
    Captured(Captured<Tensor>),
    Uncaptured,
}

impl GraphedStep {
    /// Wraps `inner`, which trains on `device`.
    pub fn new(inner: Compiled, device: Device) -> Self {
        GraphedStep {
            inner,
            device,
            state: State::Fresh,
        }
    }

    /// Whether the step runs from a graph.
    pub fn is_captured(&self) -> bool {
        matches!(self.state, State::Captured(_))
    }
}

/// The batch's tensors, in the order the step is captured on.
fn tensors(b: &Batch) -> [Tensor; 4] {
    [&b.idx, &b.targets, &b.cos, &b.sin].map(Tensor::shallow_clone)
}

impl Trainer for GraphedStep {
    fn step(&mut self, b: &Batch) -> Result<Tensor, BenchError> {
        match &self.state {
            State::Captured(c) => {
                let loss = c.replay(&tensors(b)).map_err(|e| match e {
                    ReplayError::Refill(RefillError::Torch(t)) => BenchError::from(t),
                    ReplayError::Launch(m) => BenchError::Kernel(m),
                    e @ ReplayError::Refill(RefillError::Copy { .. }) => {
                        BenchError::Kernel(e.to_string())
                    }
                    e => BenchError::Usage(format!(
                        "a captured step was given a batch it was not captured for ({e})"
                    )),
                })?;
                return Ok(loss.shallow_clone());
            }
            State::Uncaptured => return self.inner.step(b),
            State::Fresh => {}
        }
        let loss = self.inner.step(b)?;
        let Device::Cuda(i) = self.device else {
            eprintln!("thunder-bench: thunder-graphs: the step runs uncaptured: it is on the CPU");
            self.state = State::Uncaptured;
            return Ok(loss);
        };
        // idx and targets copied; cos and sin (the same tables every step) used in place.
        let inner = &mut self.inner;
        let captured = Captured::capture(
            i as usize,
            &tensors(b),
            &[false, false, true, true],
            |t: &[Tensor]| {
                let [idx, targets, cos, sin] = std::array::from_fn(|k| t[k].shallow_clone());
                inner.step(&Batch {
                    idx,
                    targets,
                    cos,
                    sin,
                })
            },
        );
        self.state = match captured {
            Ok(c) => State::Captured(c),
            Err(why) => {
                eprintln!("thunder-bench: thunder-graphs: the step runs uncaptured: {why}");
                State::Uncaptured
            }
        };
        Ok(loss)
    }
}
