//! `--modes thunder-graphs` (`--cuda-graphs`): the compiled training step - forward, backward,
//! the step counter and AdamW - captured into one CUDA graph after its first run, then
//! replayed with one launch per step.
//!
//! The first step runs normally (it also compiles and loads every kernel). Then one step is
//! captured, not run, on static copies of the batch; the parameters, moments and step counter
//! are updated in place, so they are static by construction. Each later step copies its batch
//! into the static copies (unless it is the same tensors) and replays; the loss it returns is
//! the graph's own tensor, rewritten by the next replay. A step that cannot be captured runs
//! uncaptured, and the reason is printed once.

use super::train::{Batch, Compiled, Trainer};
use super::BenchError;
use tch::Tensor;
use thunder_executors::graphs::copy_of;
use thunder_executors::shim::CudaGraph;
use thunder_ir::Device;

/// The compiled step, replayed from a CUDA graph after the first step.
pub struct GraphedStep {
    inner: Compiled,
    device: Device,
    state: State,
}

enum State {
    Fresh,
    Captured {
        graph: CudaGraph,
        batch: Batch,
        loss: Tensor,
    },
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
        matches!(self.state, State::Captured { .. })
    }
}

/// Copies `from` into `to` unless they are the same tensor.
fn refill(to: &Tensor, from: &Tensor) -> Result<(), BenchError> {
    if to.data_ptr() != from.data_ptr() {
        if to.size() != from.size() || to.kind() != from.kind() {
            return Err(BenchError::Usage(format!(
                "a captured step was given a batch of {:?} {:?}, not {:?} {:?}",
                from.kind(),
                from.size(),
                to.kind(),
                to.size()
            )));
        }
        let mut to = to.shallow_clone();
        to.f_copy_(from)?;
    }
    Ok(())
}

impl Trainer for GraphedStep {
    fn step(&mut self, b: &Batch) -> Result<Tensor, BenchError> {
        match &self.state {
            State::Captured { graph, batch, loss } => {
                for (to, from) in [
                    (&batch.idx, &b.idx),
                    (&batch.targets, &b.targets),
                    (&batch.cos, &b.cos),
                    (&batch.sin, &b.sin),
                ] {
                    refill(to, from)?;
                }
                graph.replay().map_err(|e| BenchError::Kernel(e.0))?;
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
        let batch = Batch {
            idx: copy_of(&b.idx)?,
            targets: copy_of(&b.targets)?,
            cos: copy_of(&b.cos)?,
            sin: copy_of(&b.sin)?,
        };
        let inner = &mut self.inner;
        self.state = match CudaGraph::capture(i as usize, || inner.step(&batch)) {
            Ok((graph, captured)) => State::Captured {
                graph,
                batch,
                loss: captured,
            },
            Err(e) => {
                eprintln!(
                    "thunder-bench: thunder-graphs: the step runs uncaptured: {}",
                    e.0
                );
                State::Uncaptured
            }
        };
        Ok(loss)
    }
}
