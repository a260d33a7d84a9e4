//! Collectives between threads of one process: `world_size` ranks, each a thread running its
//! own plan, meet in a [`LoopbackGroup`]. For testing the DDP and FSDP transforms on the CPU
//! (layouts, padding, reductions) against a single-process run, without NCCL or GPUs.
//!
//! Reductions sum in rank order, so results are deterministic. Every collective waits for the
//! other ranks at most `timeout`, then fails naming the op (a rank that never arrives does not
//! hang the test).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tch::Tensor;
use thunder_executors::executor::{KArg, Outputs};
use thunder_executors::{Error as ExecError, Executor, Kernel, KernelError, RtValue};
use thunder_ir::{Attr, BoundSymbol, DistOp, Op, Trace};

struct Exchange {
    slots: Vec<Option<Tensor>>,
    arrived: usize,
    generation: u64,
}

/// The meeting point of `world_size` ranks (threads).
pub struct LoopbackGroup {
    world_size: usize,
    timeout: Duration,
    state: Mutex<Exchange>,
    turn: Condvar,
}

impl std::fmt::Debug for LoopbackGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoopbackGroup({} ranks)", self.world_size)
    }
}

impl LoopbackGroup {
    /// A group of `world_size` ranks whose collectives wait at most `timeout` for each other.
    pub fn new(world_size: usize, timeout: Duration) -> Arc<Self> {
        Arc::new(LoopbackGroup {
            world_size,
            timeout,
            state: Mutex::new(Exchange {
                slots: (0..world_size).map(|_| None).collect(),
                arrived: 0,
                generation: 0,
            }),
            turn: Condvar::new(),
        })
    }

    /// The executor of rank `rank` (put it first in that rank's executor list).
    pub fn executor(self: &Arc<Self>, rank: usize) -> LoopbackExecutor {
        LoopbackExecutor {
            group: Arc::clone(self),
            rank,
        }
    }

    /// Waits until every rank has arrived at this point (the `generation`th time).
    fn barrier(&self, what: &str) -> Result<(), KernelError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let gen = st.generation;
        st.arrived += 1;
        if st.arrived == self.world_size {
            st.arrived = 0;
            st.generation += 1;
            self.turn.notify_all();
            return Ok(());
        }
        let (st, to) = self
            .turn
            .wait_timeout_while(st, self.timeout, |s| s.generation == gen)
            .unwrap_or_else(|e| e.into_inner());
        if to.timed_out() && st.generation == gen {
            return Err(KernelError(format!(
                "{what}: the other ranks did not arrive within {:?}",
                self.timeout
            )));
        }
        Ok(())
    }

    /// Every rank's `t`, in rank order.
    fn exchange(&self, rank: usize, t: &Tensor, what: &str) -> Result<Vec<Tensor>, KernelError> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).slots[rank] = Some(t.copy());
        self.barrier(what)?;
        let all: Vec<Tensor> = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.slots
                .iter()
                .map(|s| s.as_ref().map(|t| t.shallow_clone()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| KernelError(format!("{what}: a rank's value is missing")))?
        };
        // Nobody overwrites a slot before everyone has read them all.
        self.barrier(what)?;
        Ok(all)
    }
}

/// Runs `dist.*` ops of one rank through its [`LoopbackGroup`].
#[derive(Debug)]
pub struct LoopbackExecutor {
    group: Arc<LoopbackGroup>,
    rank: usize,
}

fn reduce(all: &[Tensor], op: &str) -> Result<Tensor, KernelError> {
    let stacked = Tensor::f_stack(all, 0)?;
    let kind = all[0].kind();
    Ok(match op {
        "sum" => stacked.f_sum_dim_intlist(0, false, kind)?,
        "avg" => stacked.f_mean_dim(0, false, kind)?,
        "max" => stacked.f_amax(0, false)?,
        "min" => stacked.f_amin(0, false)?,
        other => return Err(KernelError(format!("unknown reduction {other:?}"))),
    })
}

impl Executor for LoopbackExecutor {
    fn name(&self) -> &'static str {
        "loopback"
    }

    fn claims(&self, _trace: &Trace, bsym: &BoundSymbol) -> bool {
        match bsym.op {
            Op::Dist(DistOp::Wait) => true,
            Op::Dist(d) => d.world_size(&bsym.attrs) == Some(self.group.world_size),
            _ => false,
        }
    }

    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> thunder_executors::Result<Kernel> {
        let Op::Dist(op) = bsym.op else {
            return Err(ExecError::Compile {
                executor: "loopback",
                statement: thunder_ir::printer::statement(trace, bsym),
                message: "not a collective".into(),
            });
        };
        let group = Arc::clone(&self.group);
        let rank = self.rank;
        let world = group.world_size as i64;
        let what = thunder_ir::printer::statement(trace, bsym);
        let reduction = match bsym.attrs.first() {
            Some(Attr::Str(s)) => s.clone(),
            _ => String::new(),
        };
        let root = match bsym.attrs.first() {
            Some(Attr::Int(r)) => *r as usize,
            _ => 0,
        };
        Ok(Box::new(move |args| {
            let t = match args.get(0)? {
                KArg::Value(RtValue::Tensor(t)) => t,
                _ => return Err(KernelError("a collective takes a tensor".into())),
            };
            let out = match op {
                DistOp::Wait => t.shallow_clone(),
                DistOp::AllReduce => reduce(&group.exchange(rank, t, &what)?, &reduction)?,
                DistOp::AllGather => Tensor::f_cat(&group.exchange(rank, t, &what)?, 0)?,
                DistOp::ReduceScatter => {
                    let full = reduce(&group.exchange(rank, t, &what)?, &reduction)?;
                    let n = full.size()[0] / world;
                    full.f_narrow(0, rank as i64 * n, n)?.f_contiguous()?
                }
                DistOp::Broadcast => group.exchange(rank, t, &what)?[root].shallow_clone(),
            };
            let mut o = Outputs::new();
            o.push(RtValue::Tensor(out));
            Ok(o)
        }))
    }
}
