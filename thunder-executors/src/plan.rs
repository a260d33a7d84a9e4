//! `ExecutionPlan`: a claimed trace compiled into instructions over numbered slots.
//!
//! Compiled once, run many times. A run does no string lookups and builds no metadata: each
//! instruction reads its operands from slots (one per value of the trace), calls its kernel, stores
//! the results, and clears the slots whose last use it was, so intermediates are freed as early as
//! possible.

use crate::claim::{claim, ClaimedTrace};
use crate::convert;
use crate::executor::{ArgRef, Args, Executor, Kernel, RtValue};
use crate::fusion::Region;
use crate::torch_executor::TorchExecutor;
use crate::{Error, Result};
use smallvec::SmallVec;
use std::cell::RefCell;
use thunder_ir::printer::statement;
use thunder_ir::{Arg, Trace, Value, ValueType};

/// Per instruction of a run, its statement and seconds ([`ExecutionPlan::run_profiled`]).
pub type Profile = Vec<(String, f64)>;

struct Instr {
    kernel: Kernel,
    args: SmallVec<[ArgRef; 4]>,
    outs: SmallVec<[u32; 2]>,
    /// Slots whose last use is this instruction.
    free: SmallVec<[u32; 4]>,
    /// Index into the claimed ops (for error messages).
    op: u32,
}

/// A compiled trace. See the module docs.
pub struct ExecutionPlan {
    claimed: ClaimedTrace,
    n_slots: usize,
    inputs: Vec<(u32, ValueType)>,
    instrs: Vec<Instr>,
    outputs: Vec<u32>,
    statements: Vec<String>,
}

impl std::fmt::Debug for ExecutionPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionPlan")
            .field("trace", &self.claimed.trace.name)
            .field("instructions", &self.instrs.len())
            .field("slots", &self.n_slots)
            .finish()
    }
}

impl ExecutionPlan {
    /// Compiles `trace` for `executors` (in priority order). The torch executor is appended when
    /// the list has no fallback executor ([`Executor::is_fallback`]), so every prim can run.
    pub fn compile(trace: &Trace, executors: &[&dyn Executor]) -> Result<ExecutionPlan> {
        trace.verify()?;
        let fallback = TorchExecutor::new();
        let mut list: Vec<&dyn Executor> = executors.to_vec();
        if !list.iter().any(|e| e.is_fallback()) {
            list.push(&fallback);
        }
        let mut claimed = claim(trace, &list)?;
        let torch = list
            .iter()
            .position(|e| e.is_fallback())
            .unwrap_or(list.len() - 1);
        let bsyms: Vec<thunder_ir::BoundSymbol> =
            claimed.ops.iter().map(|o| o.bsym.clone()).collect();
        let (regions, region_exec) = form_regions(trace, &list, &bsyms, &mut claimed, torch);
        let order = run_order(trace, &claimed, &regions)?;
        let unit_io = |u: Unit| unit_io(&claimed, &regions, u);
        let n_slots = trace.values.len();
        // Last use of each slot, by instruction index; outputs are never freed.
        let mut last_use: Vec<Option<usize>> = vec![None; n_slots];
        for (i, &u) in order.iter().enumerate() {
            for v in unit_io(u).0 {
                last_use[v.index()] = Some(i);
            }
        }
        for &o in &trace.outputs {
            last_use[o.index()] = None;
        }
        let mut instrs = Vec::with_capacity(order.len());
        let mut statements = Vec::with_capacity(claimed.ops.len());
        for op in &claimed.ops {
            statements.push(statement(trace, &op.bsym));
        }
        for (i, &u) in order.iter().enumerate() {
            let (ins, outs) = unit_io(u);
            let (kernel, args, first_op) = match u {
                Unit::Op(k) => {
                    let op = &claimed.ops[k];
                    // A region's view op needed outside too runs on the torch executor there.
                    let ex = if op.region.is_some() {
                        torch
                    } else {
                        op.executor
                    };
                    let kernel = list[ex].compile(trace, &op.bsym)?;
                    (kernel, op_args(&op.bsym), k)
                }
                Unit::Region(r) => {
                    let fuser = list[region_exec[r]].fuser().ok_or_else(|| Error::Compile {
                        executor: list[region_exec[r]].name(),
                        statement: format!("fusion{r}"),
                        message: "a region of an executor that does not fuse".into(),
                    })?;
                    let kernel = fuser.compile_region(trace, &bsyms, &regions[r])?;
                    let args = regions[r]
                        .inputs
                        .iter()
                        .map(|&v| ArgRef::Slot(slot(v)))
                        .collect();
                    (kernel, args, regions[r].ops[0])
                }
            };
            let mut free: SmallVec<[u32; 4]> = SmallVec::new();
            for v in ins {
                if last_use[v.index()] == Some(i) && !free.contains(&slot(v)) {
                    free.push(slot(v));
                }
            }
            instrs.push(Instr {
                kernel,
                args,
                outs: outs.iter().map(|v| slot(*v)).collect(),
                free,
                op: first_op as u32,
            });
        }
        check_operands(trace, &instrs)?;
        for (r, reg) in regions.iter().enumerate() {
            let body: Vec<&str> = reg.ops.iter().map(|&k| statements[k].as_str()).collect();
            let head = format!("fusion{r}: {}", body.join("; "));
            if let Some(&first) = reg.ops.first() {
                statements[first] = head;
            }
        }
        claimed.regions = regions;
        let inputs = trace
            .inputs
            .iter()
            .map(|&v| (slot(v), trace.ty(v).clone()))
            .collect();
        let outputs = trace.outputs.iter().map(|&v| slot(v)).collect();
        Ok(ExecutionPlan {
            claimed,
            n_slots,
            inputs,
            instrs,
            outputs,
            statements,
        })
    }

    /// The claimed trace the plan runs (print it with [`ClaimedTrace::to_python`]).
    pub fn claimed(&self) -> &ClaimedTrace {
        &self.claimed
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.instrs.len()
    }

    /// Whether the plan has no instructions (the trace returns its inputs).
    pub fn is_empty(&self) -> bool {
        self.instrs.is_empty()
    }

    /// Runs the plan on `inputs` (in the trace's input order), returning the trace's outputs.
    ///
    /// Inputs are checked against the metadata the plan was compiled for (dtype, device, shape),
    /// since a mismatch would otherwise broadcast silently or fail deep inside libtorch.
    pub fn run(&self, inputs: &[RtValue]) -> Result<Vec<RtValue>> {
        self.run_owned(inputs.iter().map(RtValue::share).collect())
    }

    /// [`run`](Self::run), taking the inputs: the plan drops each one after its last use, so
    /// the memory of an input nobody else holds (a forward's saved tensors, passed to the
    /// backward) is freed during the run rather than after it.
    pub fn run_owned(&self, inputs: Vec<RtValue>) -> Result<Vec<RtValue>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::Input {
                index: inputs.len().min(self.inputs.len()),
                name: "(count)".into(),
                expected: format!("{} inputs", self.inputs.len()),
                given: format!("{} inputs", inputs.len()),
            });
        }
        thread_local! {
            // The slot vector is reused across runs on a thread (one allocation per thread, not
            // per run); a run nested inside a kernel finds it borrowed and makes its own.
            static SLOTS: RefCell<Vec<Option<RtValue>>> = const { RefCell::new(Vec::new()) };
        }
        SLOTS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slots) => {
                let r = self.run_in(&mut slots, inputs);
                slots.clear();
                r
            }
            Err(_) => self.run_in(&mut Vec::new(), inputs),
        })
    }

    /// [`run_owned`](Self::run_owned), timing every instruction: `wait` is called before the
    /// run and after each instruction (pass a device synchronization to time GPU work); returns
    /// the outputs and, per instruction in run order, its statement (a region's statements
    /// joined) and seconds. For inspection, never in a timed loop.
    pub fn run_profiled(
        &self,
        inputs: Vec<RtValue>,
        wait: &dyn Fn(),
    ) -> Result<(Vec<RtValue>, Profile)> {
        let mut slots = Vec::new();
        let mut times = Vec::with_capacity(self.instrs.len());
        wait();
        let out = self.run_with(&mut slots, inputs, &mut |i, t| {
            wait();
            times.push((
                self.statements[self.instrs[i].op as usize].clone(),
                t.elapsed().as_secs_f64(),
            ));
        })?;
        Ok((out, times))
    }

    fn run_in(
        &self,
        slots: &mut Vec<Option<RtValue>>,
        inputs: Vec<RtValue>,
    ) -> Result<Vec<RtValue>> {
        self.run_with(slots, inputs, &mut |_, _| {})
    }

    fn run_with(
        &self,
        slots: &mut Vec<Option<RtValue>>,
        inputs: Vec<RtValue>,
        after: &mut dyn FnMut(usize, std::time::Instant),
    ) -> Result<Vec<RtValue>> {
        slots.clear();
        slots.resize_with(self.n_slots, || None);
        for (i, ((slot, ty), v)) in self.inputs.iter().zip(inputs).enumerate() {
            self.check_input(i, ty, &v)?;
            slots[*slot as usize] = Some(v);
        }
        for (i, instr) in self.instrs.iter().enumerate() {
            let start = std::time::Instant::now();
            let outs = (instr.kernel)(&Args::new(slots, &instr.args))
                .map_err(|e| self.kernel_error(instr, e.0))?;
            if outs.len() != instr.outs.len() {
                return Err(self.kernel_error(
                    instr,
                    format!(
                        "the kernel returned {} values, the trace expects {}",
                        outs.len(),
                        instr.outs.len()
                    ),
                ));
            }
            for (s, v) in instr.outs.iter().zip(outs) {
                slots[*s as usize] = Some(v);
            }
            for &s in &instr.free {
                slots[s as usize] = None;
            }
            after(i, start);
        }
        self.outputs
            .iter()
            .map(|&s| {
                slots[s as usize]
                    .as_ref()
                    .map(RtValue::share)
                    .ok_or_else(|| Error::Kernel {
                        executor: "plan",
                        line: 0,
                        statement: format!("return {}", self.claimed.trace.name_of(Value(s))),
                        message: "the output was never computed".into(),
                    })
            })
            .collect()
    }

    /// Runs the plan on tensors only, returning tensors (a convenience for tensor programs).
    pub fn run_tensors(&self, inputs: &[tch::Tensor]) -> Result<Vec<tch::Tensor>> {
        self.run_tensors_owned(inputs.iter().map(|t| t.shallow_clone()).collect())
    }

    /// [`run_tensors`](Self::run_tensors), taking the inputs (see [`run_owned`](Self::run_owned)).
    pub fn run_tensors_owned(&self, inputs: Vec<tch::Tensor>) -> Result<Vec<tch::Tensor>> {
        let ins: Vec<RtValue> = inputs.into_iter().map(RtValue::Tensor).collect();
        self.run_owned(ins)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.into_tensor().ok_or_else(|| Error::Input {
                    index: i,
                    name: "output".into(),
                    expected: "a tensor".into(),
                    given: "a number (use run)".into(),
                })
            })
            .collect()
    }

    fn check_input(&self, i: usize, ty: &ValueType, v: &RtValue) -> Result<()> {
        let name = || {
            self.claimed
                .trace
                .name_of(self.claimed.trace.inputs[i])
                .to_string()
        };
        let given = match (ty, v) {
            (ValueType::Tensor(m), RtValue::Tensor(t)) => {
                // f_kind: a tensor of a kind tch does not know (quantized, ...) is an error, not a
                // panic.
                let kind = t.f_kind().ok();
                let ok_kind = kind == Some(convert::kind(m.dtype));
                let ok_dev = convert::device(m.device) == t.device();
                let ok_shape = t.dim() == m.rank()
                    && t.size()
                        .iter()
                        .zip(m.shape.dims())
                        .all(|(&a, b)| a as usize == b.value());
                if ok_kind && ok_dev && ok_shape {
                    return Ok(());
                }
                let dt = kind
                    .and_then(convert::dtype)
                    .map_or_else(|| format!("{kind:?}"), |d| d.to_string());
                let dev = convert::from_tch_device(t.device())
                    .map_or(format!("{:?}", t.device()), |d| d.to_string());
                format!("{dev} {dt}{:?}", t.size())
            }
            (ValueType::Number(n), RtValue::Int(_)) if *n == thunder_ir::NumberType::Int => {
                return Ok(())
            }
            (ValueType::Number(n), RtValue::Float(_)) if *n == thunder_ir::NumberType::Float => {
                return Ok(())
            }
            (ValueType::Number(n), RtValue::Bool(_)) if *n == thunder_ir::NumberType::Bool => {
                return Ok(())
            }
            (_, RtValue::Tensor(_)) => "a tensor".to_string(),
            (_, RtValue::Int(_)) => "an int".to_string(),
            (_, RtValue::Float(_)) => "a float".to_string(),
            (_, RtValue::Bool(_)) => "a bool".to_string(),
        };
        Err(Error::Input {
            index: i,
            name: name(),
            expected: ty.to_string(),
            given,
        })
    }

    fn kernel_error(&self, instr: &Instr, message: String) -> Error {
        let op = &self.claimed.ops[instr.op as usize];
        Error::Kernel {
            executor: self.claimed.executor_names[op.executor],
            line: op.line,
            statement: self.statements[instr.op as usize].clone(),
            message,
        }
    }
}

/// The slot of a value.
fn slot(v: Value) -> u32 {
    v.0
}

/// What the plan runs: a bound symbol outside regions (a region's view op whose result is also
/// needed outside runs outside as well), or a region.
#[derive(Clone, Copy)]
enum Unit {
    Op(usize),
    Region(usize),
}

/// The values a unit reads and the values it writes.
fn unit_io(claimed: &ClaimedTrace, regions: &[Region], u: Unit) -> (Vec<Value>, Vec<Value>) {
    match u {
        Unit::Op(i) => (
            claimed.ops[i].bsym.inputs(),
            claimed.ops[i].bsym.outputs.clone(),
        ),
        Unit::Region(r) => (regions[r].inputs.clone(), regions[r].outputs.clone()),
    }
}

/// Groups each fusion executor's ops (of `list`) into regions, marking the claimed ops with
/// their region; what a fusion executor claimed but no region took (views) goes to the
/// fallback executor (`torch`, its position in `list`). Returns the regions and, per region,
/// the position of its executor.
fn form_regions(
    trace: &Trace,
    list: &[&dyn Executor],
    bsyms: &[thunder_ir::BoundSymbol],
    claimed: &mut ClaimedTrace,
    torch: usize,
) -> (Vec<Region>, Vec<usize>) {
    let mut regions: Vec<Region> = Vec::new();
    let mut region_exec: Vec<usize> = Vec::new();
    for (ei, e) in list.iter().enumerate() {
        if e.fuser().is_none() {
            continue;
        }
        let rs = crate::fusion::partition(trace, bsyms, |i| claimed.ops[i].executor == ei);
        for r in rs {
            for &i in r.ops.iter().chain(&r.dead) {
                claimed.ops[i].region = Some(regions.len());
            }
            regions.push(r);
            region_exec.push(ei);
        }
        for op in claimed.ops.iter_mut() {
            if op.executor == ei && op.region.is_none() {
                op.executor = torch;
            }
        }
    }
    (regions, region_exec)
}

/// The units the plan runs (regions, and ops outside regions) in topological order, earliest
/// original position first.
fn run_order(trace: &Trace, claimed: &ClaimedTrace, regions: &[Region]) -> Result<Vec<Unit>> {
    let mut units: Vec<(usize, Unit)> = Vec::new();
    for (i, op) in claimed.ops.iter().enumerate() {
        if op.region.is_none() {
            units.push((i, Unit::Op(i)));
        }
    }
    for reg in regions {
        units.extend(reg.outside.iter().map(|&i| (i, Unit::Op(i))));
    }
    for (r, reg) in regions.iter().enumerate() {
        // A region left with nothing to compute (see `Region::dead`) runs nothing.
        if let Some(&first) = reg.ops.first() {
            units.push((first, Unit::Region(r)));
        }
    }
    let unit_io = |u: Unit| unit_io(claimed, regions, u);
    let mut producer: std::collections::HashMap<Value, usize> = std::collections::HashMap::new();
    for (k, &(_, u)) in units.iter().enumerate() {
        for o in unit_io(u).1 {
            producer.insert(o, k);
        }
    }
    let mut indegree = vec![0usize; units.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
    for (k, &(_, u)) in units.iter().enumerate() {
        let mut deps: Vec<usize> = unit_io(u)
            .0
            .iter()
            .filter_map(|v| producer.get(v).copied())
            .filter(|&d| d != k)
            .collect();
        deps.sort_unstable();
        deps.dedup();
        indegree[k] = deps.len();
        for d in deps {
            users[d].push(k);
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<(usize, usize)>> = units
        .iter()
        .enumerate()
        .filter(|(k, _)| indegree[*k] == 0)
        .map(|(k, &(pos, _))| std::cmp::Reverse((pos, k)))
        .collect();
    let mut order: Vec<Unit> = Vec::with_capacity(units.len());
    while let Some(std::cmp::Reverse((_, k))) = ready.pop() {
        order.push(units[k].1);
        for &u in &users[k] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                ready.push(std::cmp::Reverse((units[u].0, u)));
            }
        }
    }
    if order.len() != units.len() {
        return Err(Error::Compile {
            executor: "plan",
            statement: trace.name.clone(),
            message: "the fusion regions form a cycle (a partitioner bug)".into(),
        });
    }
    Ok(order)
}

/// How a bound symbol's instruction refers to its operands.
fn op_args(bsym: &thunder_ir::BoundSymbol) -> SmallVec<[ArgRef; 4]> {
    bsym.args
        .iter()
        .map(|a| match a {
            Arg::Value(v) => ArgRef::Slot(slot(*v)),
            Arg::Int(x) => ArgRef::Int(*x),
            Arg::Float(x) => ArgRef::Float(*x),
            Arg::Bool(x) => ArgRef::Bool(*x),
            Arg::None => ArgRef::None,
            Arg::List(l) => ArgRef::List(l.iter().map(|v| slot(*v)).collect()),
        })
        .collect()
}

/// Every operand is an input or computed earlier (regions and their outside views must not
/// leave a value uncomputed).
fn check_operands(trace: &Trace, instrs: &[Instr]) -> Result<()> {
    let mut available: std::collections::HashSet<u32> =
        trace.inputs.iter().map(|&v| slot(v)).collect();
    for (i, instr) in instrs.iter().enumerate() {
        for a in &instr.args {
            let missing = match a {
                ArgRef::Slot(s) => (!available.contains(s)).then_some(*s),
                ArgRef::List(l) => l.iter().copied().find(|s| !available.contains(s)),
                _ => None,
            };
            if let Some(s) = missing {
                return Err(Error::Compile {
                    executor: "plan",
                    statement: format!("instruction {i}"),
                    message: format!(
                        "reads {}, which nothing computes before it (a partitioner bug)",
                        trace.name_of(Value(s))
                    ),
                });
            }
        }
        available.extend(instr.outs.iter().copied());
    }
    Ok(())
}
