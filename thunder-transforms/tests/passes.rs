//! The pass manager, dce and cse, checked on the text of the traces before and after.

use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{parse_trace, DType, PrimOp, TensorMeta, Trace, TraceBuilder};
use thunder_transforms::{cse, dce, pass_fn, PassManager, TransformError};

fn lines_with(t: &Trace, needle: &str) -> usize {
    t.to_python()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains(needle))
        .count()
}

#[test]
fn dce_removes_what_no_output_needs_and_keeps_inputs() {
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [4])).unwrap();
    let unused_input = b.input("u", TensorMeta::new(DType::F32, [4])).unwrap();
    let y = b.exp(x).unwrap();
    let dead = b.neg(x).unwrap();
    let _dead2 = b.mul(dead, unused_input).unwrap();
    let t = b.build(&[y]).unwrap();
    assert_eq!(t.bound_symbols.len(), 3);
    let after = dce(&t).unwrap();
    after.verify().unwrap();
    assert_eq!(after.bound_symbols.len(), 1);
    assert_eq!(lines_with(&after, "ltorch.exp"), 1);
    assert_eq!(after.inputs.len(), 2, "the signature does not change");
    // The table holds only what the program defines: it prints and parses back the same.
    assert_eq!(parse_trace(&after.to_python()).unwrap(), after);
}

#[test]
fn dce_keeps_in_place_writes() {
    let mut b = TraceBuilder::new("step");
    let p = b.input("param", TensorMeta::new(DType::F32, [4])).unwrap();
    let g = b.input("grad", TensorMeta::new(DType::F32, [4])).unwrap();
    let upd = b
        .prim(PrimOp::Sub, vec![p.into(), g.into()], vec![])
        .unwrap();
    let _written = b
        .prim(PrimOp::Copy_, vec![upd.into(), p.into()], vec![])
        .unwrap();
    let t = b.build(&[]).unwrap();
    let after = dce(&t).unwrap();
    assert_eq!(
        after.bound_symbols.len(),
        2,
        "copy_ and what it reads stay:\n{}",
        after.to_python()
    );
}

#[test]
fn cse_merges_repeats_but_not_random_ops() {
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [4, 8])).unwrap();
    let a = b.softmax(x, -1).unwrap();
    let a2 = b.softmax(x, -1).unwrap();
    let other_dim = b.softmax(x, 0).unwrap();
    let s = b.add(a, a2).unwrap();
    let s2 = b.add(a2, a).unwrap(); // operands in another order: not the same expression
    let d1 = b.dropout(s, 0.5, true).unwrap();
    let d2 = b.dropout(s, 0.5, true).unwrap();
    let t = b.build(&[s2, other_dim, d1, d2]).unwrap();
    let after = cse(&t).unwrap();
    after.verify().unwrap();
    assert_eq!(
        lines_with(&after, "ltorch.softmax(x, dim=-1"),
        1,
        "{}",
        after.to_python()
    );
    assert_eq!(lines_with(&after, "ltorch.softmax(x, dim=0"), 1);
    assert_eq!(
        lines_with(&after, "ltorch.dropout"),
        2,
        "random ops are never merged"
    );
    // add(a, a2) became add(a, a); add(a2, a) became add(a, a) too, and merged with it.
    assert_eq!(lines_with(&after, "ltorch.add"), 1, "{}", after.to_python());
    let add = after
        .bound_symbols
        .iter()
        .find(|b| b.op == thunder_ir::Op::Torch(thunder_ir::TorchOp::Add))
        .unwrap();
    assert_eq!(add.args[0], add.args[1]);
    assert_eq!(
        after.outputs[0], add.outputs[0],
        "the output now names the earlier value"
    );
    assert_eq!(parse_trace(&after.to_python()).unwrap(), after);
}

#[test]
fn cse_never_merges_in_place_writes() {
    let mut b = TraceBuilder::new("f");
    let p = b.input("p", TensorMeta::new(DType::F32, [4])).unwrap();
    let g = b.input("g", TensorMeta::new(DType::F32, [4])).unwrap();
    let c1 = b
        .prim(PrimOp::Copy_, vec![g.into(), p.into()], vec![])
        .unwrap();
    let c2 = b
        .prim(PrimOp::Copy_, vec![g.into(), p.into()], vec![])
        .unwrap();
    let t = b.build(&[c1, c2]).unwrap();
    assert_eq!(cse(&t).unwrap().bound_symbols.len(), 2);
}

#[test]
fn pass_manager_keeps_every_trace_and_names_the_pass_that_breaks_one() {
    let t = programs::llama_block(&LlamaDims::tiny()).unwrap();
    let pm = PassManager::new()
        .verify_each(true)
        .then(pass_fn("cse", cse))
        .then(pass_fn("dce", dce));
    assert_eq!(pm.names(), ["cse", "dce"]);
    let h = pm.run(&t).unwrap();
    assert_eq!(h.records.len(), 3);
    assert_eq!(h.records[0].trace, t);
    assert!(h.to_python().contains("# ===== after cse ("));
    assert_eq!(
        h.last().unwrap().bound_symbols.len(),
        t.bound_symbols.len(),
        "nothing to remove in the block"
    );

    // A pass that drops a bound symbol whose output is used: the verifier names it.
    let broken = pass_fn("drop_first", |t: &Trace| {
        let mut t = t.clone();
        t.bound_symbols.remove(0);
        Ok(t)
    });
    let err = PassManager::new()
        .verify_each(true)
        .then(broken)
        .run(&t)
        .unwrap_err();
    match &err {
        TransformError::InvalidOutput { pass, .. } => assert_eq!(pass, "drop_first"),
        other => panic!("expected InvalidOutput, got {other}"),
    }
    assert!(
        err.to_string()
            .starts_with("pass drop_first produced an invalid trace: verifier:"),
        "{err}"
    );
    // Without verification the broken trace goes through (release builds trust their passes).
    assert!(PassManager::new()
        .verify_each(false)
        .then(pass_fn("drop_first", |t: &Trace| {
            let mut t = t.clone();
            t.bound_symbols.remove(0);
            Ok(t)
        }))
        .run(&t)
        .is_ok());
}

#[test]
fn cse_then_dce_on_a_program_with_repeats() {
    // Attention computed twice on the same inputs, as a naive model would: cse merges them all.
    let d = LlamaDims::tiny();
    let mut b = TraceBuilder::new("twice");
    let x = b
        .input(
            "x",
            TensorMeta::new(DType::F32, [d.batch, d.seq_len, d.hidden]),
        )
        .unwrap();
    let w = b
        .input("w", TensorMeta::new(DType::F32, [d.hidden, d.hidden]))
        .unwrap();
    let h1 = b.linear(x, w, None).unwrap();
    let h2 = b.linear(x, w, None).unwrap();
    let r1 = b.rms_norm(h1, &[d.hidden], None, Some(1e-5)).unwrap();
    let r2 = b.rms_norm(h2, &[d.hidden], None, Some(1e-5)).unwrap();
    let y = b.sub(r1, r2).unwrap();
    let t = b.build(&[y]).unwrap();
    let h = PassManager::new()
        .verify_each(true)
        .then(pass_fn("cse", cse))
        .then(pass_fn("dce", dce))
        .run(&t)
        .unwrap();
    let after = h.last().unwrap();
    assert_eq!(after.bound_symbols.len(), 3, "{}", after.to_python());
    let sub = after.bound_symbols.last().unwrap();
    assert_eq!(sub.args[0], sub.args[1]);
}
