//! Collectives by exchange: each rank gets every rank's tensor ([`Exchange`]) and reduces,
//! concatenates or slices them itself ([`ExchangeExecutor`]). Slow (a reduction moves the
//! world's data to every rank) but simple and exact, for CPUs and tests, without NCCL:
//! - [`LoopbackGroup`]: ranks are threads of one process, each running its own plan; for testing
//!   the DDP and FSDP transforms on the CPU (layouts, padding, reductions) against a
//!   single-process run. Every collective waits for the other ranks at most `timeout` (checked
//!   by [`crate::timeout`]), then fails naming the op (a rank that never arrives does not hang
//!   the test).
//! - thunder-py exchanges through torch.distributed's process group (gloo), so
//!   `thunder.distributed` runs over several CPU processes.
//!
//! Reductions sum in rank order, so every rank gets the same, deterministic result.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tch::Tensor;
use thunder_executors::executor::{KArg, Outputs};
use thunder_executors::{Error as ExecError, Executor, Kernel, KernelError, RtValue};
use thunder_ir::{Attr, BoundSymbol, DistOp, Op, Trace};

struct Slots {
    slots: Vec<Option<Tensor>>,
    arrived: usize,
    generation: u64,
}

/// The meeting point of `world_size` ranks (threads).
pub struct LoopbackGroup {
    world_size: usize,
    timeout: Duration,
    state: Mutex<Slots>,
    turn: Condvar,
}

impl std::fmt::Debug for LoopbackGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoopbackGroup({} ranks)", self.world_size)
    }
}

impl LoopbackGroup {
    /// A group of `world_size` ranks whose collectives wait at most `timeout` for each other
    /// (see [`crate::timeout`] for the range).
    pub fn new(world_size: usize, timeout: Duration) -> crate::Result<Arc<Self>> {
        let timeout = crate::timeout::check("the loopback group", timeout)?;
        Ok(Arc::new(LoopbackGroup {
            world_size,
            timeout,
            state: Mutex::new(Slots {
                slots: (0..world_size).map(|_| None).collect(),
                arrived: 0,
                generation: 0,
            }),
            turn: Condvar::new(),
        }))
    }

    /// The executor of rank `rank` (put it first in that rank's executor list).
    pub fn executor(self: &Arc<Self>, rank: usize) -> ExchangeExecutor {
        ExchangeExecutor::new("loopback", Arc::clone(self) as Arc<dyn Exchange>, rank)
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
}

/// How one rank meets the others in a collective.
pub trait Exchange: Send + Sync + std::fmt::Debug {
    /// How many ranks take part.
    fn world_size(&self) -> usize;

    /// Every rank's `t` (same shape and dtype on every rank), in rank order; `what` (the
    /// trace statement) is for errors.
    fn exchange(&self, rank: usize, t: &Tensor, what: &str) -> Result<Vec<Tensor>, KernelError>;
}

impl Exchange for LoopbackGroup {
    fn world_size(&self) -> usize {
        self.world_size
    }

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

/// Runs one rank's `dist.*` ops through an [`Exchange`]; asynchronous ones complete at once
/// (their `dist.wait` passes the result on).
#[derive(Debug)]
pub struct ExchangeExecutor {
    name: &'static str,
    group: Arc<dyn Exchange>,
    rank: usize,
}

impl ExchangeExecutor {
    /// The executor of `rank` in `group`, called `name` (in plans and errors).
    pub fn new(name: &'static str, group: Arc<dyn Exchange>, rank: usize) -> Self {
        ExchangeExecutor { name, group, rank }
    }
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

impl Executor for ExchangeExecutor {
    fn name(&self) -> &'static str {
        self.name
    }

    fn claims(&self, _trace: &Trace, bsym: &BoundSymbol) -> bool {
        match bsym.op {
            Op::Dist(DistOp::Wait) => true,
            Op::Dist(d) => d.world_size(&bsym.attrs) == Some(self.group.world_size()),
            _ => false,
        }
    }

    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> thunder_executors::Result<Kernel> {
        let Op::Dist(op) = bsym.op else {
            return Err(ExecError::Compile {
                executor: self.name,
                statement: thunder_ir::printer::statement(trace, bsym),
                message: "not a collective".into(),
            });
        };
        let group = Arc::clone(&self.group);
        let rank = self.rank;
        let world = group.world_size() as i64;
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
