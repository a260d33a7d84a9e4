//! Minimum source-sink cuts of small flow graphs (Dinic's maximum flow), the decision procedure
//! of rematerialization: which values of a program to keep in memory and which to recompute.
//! `thunder-transforms` uses it across the forward/backward split, the fusion executor between
//! the kernels of one trace.
//!
//! ```
//! use thunder_ir::mincut::{FlowGraph, INF};
//!
//! // s -> a (3), s -> b (2), a -> t (1), b -> t (INF), a -> b (INF)
//! let (s, a, b, t) = (0, 1, 2, 3);
//! let mut g = FlowGraph::new(4);
//! g.add_edge(s, a, 3);
//! g.add_edge(s, b, 2);
//! g.add_edge(a, t, 1);
//! g.add_edge(b, t, INF);
//! g.add_edge(a, b, INF);
//! let cut = g.min_cut(s, t);
//! assert_eq!(cut.flow, 5);
//! assert_eq!(cut.source_side, [true, false, false, false]);
//! ```
//!
//! Where several cuts are minimal, [`MinCut::source_side`] gives the one nearest the source and
//! [`MinCut::sink_side`] tells the one nearest the sink.

use std::collections::VecDeque;

/// A capacity no cut may cross ("infinite"). Sums of a few of them do not overflow `u64`.
pub const INF: u64 = u64::MAX / 4;

/// A directed graph with edge capacities.
#[derive(Debug, Clone)]
pub struct FlowGraph {
    head: Vec<usize>,
    to: Vec<usize>,
    cap: Vec<u64>,
    next: Vec<usize>,
}

/// The result of [`FlowGraph::min_cut`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinCut {
    /// The maximum flow, which is the capacity of the minimum cut; at least [`INF`] when every
    /// cut crosses an edge of capacity [`INF`].
    pub flow: u64,
    /// For each node, whether it is on the source's side of the cut (reachable from the source
    /// in the residual graph). The cut's edges go from a node on the source's side to one that
    /// is not. Of all minimum cuts, this is the one nearest the source.
    pub source_side: Vec<bool>,
    /// For each node, whether the sink is reachable from it in the residual graph. The nodes
    /// that are not make the source's side of the minimum cut nearest the sink.
    pub sink_side: Vec<bool>,
}

impl FlowGraph {
    /// A graph of `nodes` nodes (numbered from 0) and no edges.
    pub fn new(nodes: usize) -> Self {
        FlowGraph {
            head: vec![usize::MAX; nodes],
            to: Vec::new(),
            cap: Vec::new(),
            next: Vec::new(),
        }
    }

    /// How many nodes the graph has.
    pub fn nodes(&self) -> usize {
        self.head.len()
    }

    /// Adds an edge `from -> to` of capacity `capacity` (capped at [`INF`]).
    ///
    /// # Panics
    /// When `from` or `to` is not a node of the graph (a caller's bug, never input-dependent).
    pub fn add_edge(&mut self, from: usize, to: usize, capacity: u64) {
        assert!(from < self.nodes() && to < self.nodes(), "no such node");
        for (x, y, c) in [(from, to, capacity.min(INF)), (to, from, 0)] {
            self.to.push(y);
            self.cap.push(c);
            self.next.push(self.head[x]);
            self.head[x] = self.to.len() - 1;
        }
    }

    /// A minimum cut between `s` and `t`. Stops early, with `flow >= INF`, once the flow
    /// reaches [`INF`] (no finite cut exists); `source_side` is then meaningless.
    pub fn min_cut(&mut self, s: usize, t: usize) -> MinCut {
        let n = self.nodes();
        let mut flow: u64 = 0;
        loop {
            let mut level = vec![usize::MAX; n];
            level[s] = 0;
            let mut q = VecDeque::from([s]);
            while let Some(x) = q.pop_front() {
                let mut e = self.head[x];
                while e != usize::MAX {
                    if self.cap[e] > 0 && level[self.to[e]] == usize::MAX {
                        level[self.to[e]] = level[x] + 1;
                        q.push_back(self.to[e]);
                    }
                    e = self.next[e];
                }
            }
            if level[t] == usize::MAX {
                return MinCut {
                    flow,
                    source_side: level.iter().map(|&l| l != usize::MAX).collect(),
                    sink_side: self.reaching(t),
                };
            }
            let mut it = self.head.clone();
            loop {
                let d = self.push(s, t, INF, &level, &mut it);
                if d == 0 {
                    break;
                }
                flow = flow.saturating_add(d);
                if flow >= INF {
                    return MinCut {
                        flow,
                        source_side: vec![false; n],
                        sink_side: vec![false; n],
                    };
                }
            }
        }
    }

    /// The nodes from which `t` is reachable along edges with capacity left.
    fn reaching(&self, t: usize) -> Vec<bool> {
        let mut seen = vec![false; self.nodes()];
        seen[t] = true;
        let mut stack = vec![t];
        while let Some(y) = stack.pop() {
            // Edges into y are the reverses of the edges out of it.
            let mut e = self.head[y];
            while e != usize::MAX {
                let x = self.to[e];
                if self.cap[e ^ 1] > 0 && !seen[x] {
                    seen[x] = true;
                    stack.push(x);
                }
                e = self.next[e];
            }
        }
        seen
    }

    fn push(&mut self, x: usize, t: usize, f: u64, level: &[usize], it: &mut [usize]) -> u64 {
        if x == t {
            return f;
        }
        while it[x] != usize::MAX {
            let e = it[x];
            let y = self.to[e];
            if self.cap[e] > 0 && level[y] == level[x] + 1 {
                let d = self.push(y, t, f.min(self.cap[e]), level, it);
                if d > 0 {
                    self.cap[e] -= d;
                    self.cap[e ^ 1] += d;
                    return d;
                }
            }
            it[x] = self.next[e];
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_takes_the_cheapest_edges_of_a_chain() {
        // s -> 1 (INF) -> 2 (5) -> 3 (2) -> 4 (7) -> t (INF)
        let mut g = FlowGraph::new(6);
        g.add_edge(0, 1, INF);
        g.add_edge(1, 2, 5);
        g.add_edge(2, 3, 2);
        g.add_edge(3, 4, 7);
        g.add_edge(4, 5, INF);
        let cut = g.min_cut(0, 5);
        assert_eq!(cut.flow, 2);
        assert_eq!(cut.source_side, [true, true, true, false, false, false]);
        assert_eq!(cut.sink_side, [false, false, false, true, true, true]);
    }

    #[test]
    fn of_two_equal_cuts_either_end_can_be_had() {
        // s -> 1 (INF) -> 2 (3) -> 3 (3) -> t (INF)
        let mut g = FlowGraph::new(5);
        g.add_edge(0, 1, INF);
        g.add_edge(1, 2, 3);
        g.add_edge(2, 3, 3);
        g.add_edge(3, 4, INF);
        let cut = g.min_cut(0, 4);
        assert_eq!(cut.flow, 3);
        assert_eq!(cut.source_side, [true, true, false, false, false]);
        assert_eq!(cut.sink_side, [false, false, false, true, true]);
    }

    #[test]
    fn a_path_of_infinite_edges_has_no_finite_cut() {
        let mut g = FlowGraph::new(3);
        g.add_edge(0, 1, INF);
        g.add_edge(1, 2, u64::MAX);
        g.add_edge(0, 2, 4);
        assert!(g.min_cut(0, 2).flow >= INF);
    }

    #[test]
    fn parallel_paths_add_up() {
        let mut g = FlowGraph::new(4);
        g.add_edge(0, 1, 3);
        g.add_edge(0, 2, 4);
        g.add_edge(1, 3, 10);
        g.add_edge(2, 3, 1);
        let cut = g.min_cut(0, 3);
        assert_eq!(cut.flow, 4);
        assert_eq!(cut.source_side, [true, false, true, false]);
    }
}
