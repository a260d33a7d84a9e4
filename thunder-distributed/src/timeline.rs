//! Where a distributed step's time goes: CUDA events around every collective and every wait,
//! read back after the step ([`crate::nccl_executor::NcclExecutor::start_timeline`]).
//!
//! For an asynchronous collective: when the compute stream issued it, when it started on the
//! communication stream (later if earlier collectives were still running) and when it ended.
//! For a `dist.wait`: when the compute stream reached it and when it went on. The difference is
//! communication the compute did not hide (a *stall*).

use cudarc::driver::{result as drv, sys as dsys, DriverError};
use std::fmt::Write;
use thunder_executors::cuda::CudaError;

/// A failed driver call, with `call` saying which (the message: `call: error`).
pub(crate) fn driver(call: &'static str) -> impl FnOnce(DriverError) -> CudaError {
    move |error| CudaError::Driver {
        call: call.into(),
        error,
    }
}

/// A timing event (timing enabled, unlike the executor's ordering events) recorded on
/// `stream` now.
pub(crate) fn mark(stream: usize) -> Result<usize, CudaError> {
    let ev = drv::event::create(dsys::CUevent_flags::CU_EVENT_DEFAULT)
        .map_err(driver("cuEventCreate"))?;
    // SAFETY: an event just made and a live stream.
    unsafe { drv::event::record(ev, stream as dsys::CUstream) }.map_err(driver("cuEventRecord"))?;
    Ok(ev as usize)
}

/// The events of one step, not yet read.
pub(crate) struct Recording {
    pub base: usize,
    /// `(statement, issued, started, ended)`.
    pub collectives: Vec<(String, usize, usize, usize)>,
    /// `(statement, reached, resumed)`.
    pub waits: Vec<(String, usize, usize)>,
}

impl Recording {
    /// Waits for every event, reads the times (milliseconds after `base`) and destroys the
    /// events.
    pub fn read(self) -> Result<Timeline, CudaError> {
        let at = |ev: usize| -> Result<f64, CudaError> {
            // SAFETY: events recorded by this executor; synchronize before reading.
            unsafe {
                drv::event::synchronize(ev as dsys::CUevent)
                    .and_then(|_| {
                        drv::event::elapsed(self.base as dsys::CUevent, ev as dsys::CUevent)
                    })
                    .map(f64::from)
                    .map_err(driver("reading a timing event"))
            }
        };
        let mut t = Timeline::default();
        for (what, i, s, e) in &self.collectives {
            t.collectives.push(Collective {
                what: what.clone(),
                issued: at(*i)?,
                started: at(*s)?,
                ended: at(*e)?,
            });
        }
        for (what, r, g) in &self.waits {
            t.waits.push(Wait {
                what: what.clone(),
                reached: at(*r)?,
                resumed: at(*g)?,
            });
        }
        let all = std::iter::once(self.base)
            .chain(self.collectives.iter().flat_map(|c| [c.1, c.2, c.3]))
            .chain(self.waits.iter().flat_map(|w| [w.1, w.2]));
        for ev in all {
            // SAFETY: no longer used.
            let _ = unsafe { drv::event::destroy(ev as dsys::CUevent) };
        }
        Ok(t)
    }
}

/// A collective's times, in milliseconds after the start of the recording.
#[derive(Debug, Clone)]
pub struct Collective {
    /// The statement.
    pub what: String,
    /// When the compute stream issued it.
    pub issued: f64,
    /// When it started.
    pub started: f64,
    /// When it ended.
    pub ended: f64,
}

/// A wait's times, in milliseconds after the start of the recording.
#[derive(Debug, Clone)]
pub struct Wait {
    /// The statement.
    pub what: String,
    /// When the compute stream reached it.
    pub reached: f64,
    /// When the compute stream went on.
    pub resumed: f64,
}

/// The collectives and waits of a recording.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// In issue order.
    pub collectives: Vec<Collective>,
    /// In issue order.
    pub waits: Vec<Wait>,
}

impl Timeline {
    /// Milliseconds the communication stream was busy (the union of the collectives' spans).
    pub fn comm_busy(&self) -> f64 {
        let mut spans: Vec<(f64, f64)> = self
            .collectives
            .iter()
            .map(|c| (c.started, c.ended))
            .collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut total, mut cur): (f64, Option<(f64, f64)>) = (0.0, None);
        for (s, e) in spans {
            cur = match cur {
                Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
                Some((cs, ce)) => {
                    total += ce - cs;
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        total + cur.map_or(0.0, |(s, e)| e - s)
    }

    /// Milliseconds the compute stream waited for collectives.
    pub fn stalled(&self) -> f64 {
        self.waits.iter().map(|w| w.resumed - w.reached).sum()
    }

    /// A plain-text summary: totals, then the longest stalls and collectives.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let span = self
            .waits
            .iter()
            .map(|w| w.resumed)
            .chain(self.collectives.iter().map(|c| c.ended))
            .fold(0.0, f64::max);
        let queued: f64 = self
            .collectives
            .iter()
            .map(|c| (c.started - c.issued).max(0.0))
            .sum();
        let kernel: f64 = self.collectives.iter().map(|c| c.ended - c.started).sum();
        let _ = writeln!(
            out,
            "{} collectives, {} waits over {span:.1} ms (first event to last)",
            self.collectives.len(),
            self.waits.len()
        );
        let _ = writeln!(
            out,
            "communication stream busy {:.1} ms (collectives' own time {kernel:.1} ms); compute \
             stream stalled at waits {:.1} ms; collectives queued behind earlier ones {queued:.1} ms",
            self.comm_busy(),
            self.stalled()
        );
        let mut by_kind: std::collections::BTreeMap<&str, (usize, f64, f64)> = Default::default();
        for c in &self.collectives {
            let kind = c.what.split('(').next().unwrap_or("").trim();
            let kind = kind.rsplit('=').next().unwrap_or(kind).trim();
            let e = by_kind.entry(kind).or_default();
            e.0 += 1;
            e.1 += c.ended - c.started;
            e.2 += (c.started - c.issued).max(0.0);
        }
        for (k, (n, t, q)) in by_kind {
            let _ = writeln!(out, "  {k}: {n} calls, {t:.1} ms running, {q:.1} ms queued");
        }
        let mut waits: Vec<&Wait> = self.waits.iter().collect();
        waits.sort_by(|a, b| (b.resumed - b.reached).total_cmp(&(a.resumed - a.reached)));
        let _ = writeln!(out, "longest stalls (ms at, stall ms, statement):");
        for w in waits.iter().take(15) {
            let _ = writeln!(
                out,
                "  {:9.2} {:7.3}  {}",
                w.reached,
                w.resumed - w.reached,
                w.what
            );
        }
        let _ = writeln!(out, "all waits in order (ms at, stall ms):");
        for w in &self.waits {
            let _ = writeln!(out, "  {:9.2} {:7.3}", w.reached, w.resumed - w.reached);
        }
        out
    }
}
