//! The loader rejects bad files with typed errors that name the file and the line.

use opinfo_db::{DbError, OpDb, Part};
use proptest::prelude::*;

const SOFTMAX: &str = "\
# a comment
- name: ltorch.exp
  torch: torch.exp
  dtypes: {cpu: [f32], cuda: [f32]}
  differentiable: true
  samples:
    - args: [{shape: [2]}]

- name: ltorch.softmax
  torch: torch.softmax
  dtypes:
    cpu: [floating]
    cuda: [f32, bf16]
  differentiable: true
  samples:
    - args: [{shape: [2, 3]}]
      attrs: {dim: 1}
    - args: [{shape: [2, 3]}]
      attrs: {DIMS: 1}
";

fn load(text: &str) -> DbError {
    match OpDb::from_sources([("ops/test.yaml", text)]) {
        Ok(_) => panic!("loaded:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn a_valid_file_loads() {
    let good = SOFTMAX.replace("DIMS", "dim");
    let db =
        OpDb::from_sources([("ops/test.yaml", good.as_str())]).unwrap_or_else(|e| panic!("{e}"));
    let e = db.by_name("ltorch.softmax").expect("softmax");
    assert_eq!(e.location.to_string(), "ops/test.yaml:9");
    assert_eq!(e.cpu_dtypes.len(), 4);
    assert_eq!(e.samples.len(), 2);
    assert_eq!(db.by_name("ltorch.exp").expect("exp").location.line, 2);
}

#[test]
fn unknown_attribute_names_file_line_sample_and_the_signature() {
    let e = load(SOFTMAX);
    assert!(matches!(
        &e,
        DbError::UnknownAttr { part: Part::Sample(1), attr, .. } if attr == "DIMS"
    ));
    assert_eq!(
        e.to_string(),
        "ops/test.yaml:9: ltorch.softmax: sample 1: unknown attribute \"DIMS\" (ltorch.softmax takes dim, dtype)"
    );
    let e = load(&SOFTMAX.replace("{DIMS: 1}", "{dim: 1, alpha: 2}"));
    assert!(e.to_string().contains("unknown attribute \"alpha\""), "{e}");
    let e = load(&SOFTMAX.replace("attrs: {DIMS: 1}", "attrs: {dim: 1}\n  attrs: {x: 1}"));
    assert_eq!(
        e.to_string(),
        "ops/test.yaml:9: ltorch.softmax: attrs: unknown attribute \"x\" (ltorch.softmax takes dim, dtype)"
    );
    let e = load(&SOFTMAX.replace("DIMS", "dim").replace(
        "- args: [{shape: [2]}]",
        "- args: [{shape: [2]}]\n      attrs: {dim: 0}",
    ));
    assert!(
        e.to_string().ends_with(
            "ltorch.exp: sample 0: unknown attribute \"dim\" (ltorch.exp takes no attributes)"
        ),
        "{e}"
    );
}

#[test]
fn unknown_field_is_a_syntax_error_with_line_and_column() {
    let e = load(&SOFTMAX.replace(
        "  differentiable: true\n  samples:\n    - args: [{shape: [2, 3]}]",
        "  differentiable: true\n  sampels:\n    - args: [{shape: [2, 3]}]",
    ));
    match &e {
        DbError::Syntax {
            file,
            line,
            message,
            ..
        } => {
            assert_eq!(file, "ops/test.yaml");
            assert_eq!(*line, 15, "{e}");
            assert!(message.contains("unknown field `sampels`"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("ops/test.yaml:15:3: ltorch.softmax: unknown field `sampels`"),
        "{e}"
    );
    // Inside a sample.
    let e = load(&SOFTMAX.replace("attrs: {DIMS: 1}", "atrs: {dim: 1}"));
    assert!(matches!(e, DbError::Syntax { line: 19, .. }), "{e}");
    assert!(e.to_string().contains("unknown field `atrs`"), "{e}");
    // Inside a tensor spec: reported with the entry, the sample and the operand.
    let e = load(
        &SOFTMAX
            .replace("attrs: {DIMS: 1}", "attrs: {dim: 1}")
            .replace(
                "- args: [{shape: [2, 3]}]\n      attrs: {dim: 1}\n    - args: [{shape: [2, 3]}]",
                "- args: [{shape: [2, 3]}]\n      attrs: {dim: 1}\n    - args: [{shap: [2, 3]}]",
            ),
    );
    assert!(
        matches!(
            e,
            DbError::BadOperand {
                index: 0,
                part: Part::Sample(1),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("ops/test.yaml:9: ltorch.softmax: sample 1: operand 0 (a): bad tensor spec: unknown field `shap`"), "{e}");
}

#[test]
fn unknown_op_is_named_with_a_suggestion() {
    let e = load(
        &SOFTMAX
            .replace("DIMS", "dim")
            .replace("name: ltorch.softmax", "name: torch.softmax"),
    );
    assert_eq!(
        e.to_string(),
        "ops/test.yaml:9: unknown op \"torch.softmax\" (did you mean \"ltorch.softmax\"?)"
    );
    let e = load(
        &SOFTMAX
            .replace("DIMS", "dim")
            .replace("name: ltorch.exp", "name: ltorch.expp"),
    );
    assert!(
        matches!(&e, DbError::UnknownOp { at, .. } if at.line == 2),
        "{e}"
    );
    assert_eq!(e.to_string(), "ops/test.yaml:2: unknown op \"ltorch.expp\"");
    let e = load(&SOFTMAX.replace("name: ltorch.exp", "name: exp"));
    assert!(
        e.to_string()
            .contains("did you mean \"prims.exp\" or \"ltorch.exp\""),
        "{e}"
    );
}

#[test]
fn bad_dtypes_are_rejected() {
    let e = load(&SOFTMAX.replace("cuda: [f32, bf16]", "cuda: [f32, bfloat16]"));
    assert!(
        matches!(&e, DbError::UnknownDType { name, part: Part::Entry, .. } if name == "bfloat16"),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(
            "ops/test.yaml:9: ltorch.softmax: unknown dtype \"bfloat16\" (expected one of f64, f32"
        ),
        "{e}"
    );
    let e = load(&SOFTMAX.replace("{shape: [2]}", "{shape: [2], dtype: float}"));
    assert!(
        e.to_string()
            .starts_with("ops/test.yaml:2: ltorch.exp: sample 0: unknown dtype \"float\""),
        "{e}"
    );
    let e = load(&SOFTMAX.replace("cuda: [f32, bf16]", "cuda: [f32, f32]"));
    assert!(e.to_string().contains("dtype f32 is listed twice"), "{e}");
    let e = load(&SOFTMAX.replace("{DIMS: 1}", "{dim: 1, dtype: f33}"));
    assert!(
        e.to_string().contains("sample 1: unknown dtype \"f33\""),
        "{e}"
    );
}

#[test]
fn operand_and_attribute_kinds_are_checked_against_the_signature() {
    let e = load(
        &SOFTMAX
            .replace("{DIMS: 1}", "{dim: 1}")
            .replace("- args: [{shape: [2]}]", "- args: [{shape: [2]}, 3]"),
    );
    assert_eq!(
        e.to_string(),
        "ops/test.yaml:2: ltorch.exp: sample 0: expected 1 operands (a), got 2"
    );
    let e = load(&SOFTMAX.replace("{DIMS: 1}", "{dim: one}"));
    assert_eq!(
        e.to_string(),
        "ops/test.yaml:9: ltorch.softmax: sample 1: attribute \"dim\": must be an int, got the string \"one\""
    );
    let e = load(&SOFTMAX.replace("{DIMS: 1}", "{}"));
    assert!(
        matches!(&e, DbError::MissingAttr { attr, .. } if attr == "dim"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("sample 1: missing attribute \"dim\" (an int)"),
        "{e}"
    );
    let e = load(
        &SOFTMAX
            .replace("{DIMS: 1}", "{dim: 1}")
            .replace("- args: [{shape: [2]}]", "- args: [2.5]"),
    );
    assert!(
        e.to_string()
            .contains("operand 0 (a): must be a tensor spec"),
        "{e}"
    );
    let e = load(&SOFTMAX.replace("{DIMS: 1}", "{dim: 1}").replace(
        "- args: [{shape: [2]}]",
        "- args: [{shape: [2], domain: [3, 1]}]",
    ));
    assert!(
        e.to_string()
            .contains("domain [3, 1] must be finite with lo < hi"),
        "{e}"
    );
    let e = load(&SOFTMAX.replace("{DIMS: 1}", "{dim: 1}").replace(
        "- args: [{shape: [2]}]",
        "- args: [{shape: [], noncontiguous: true}]",
    ));
    assert!(e.to_string().contains("cannot be noncontiguous"), "{e}");
    let e = load(
        &SOFTMAX
            .replace("{DIMS: 1}", "{dim: 1}")
            .replace("- args: [{shape: [2]}]", "- args: [{shape: [-2]}]"),
    );
    assert!(
        e.to_string().contains("operand 0 (a): bad tensor spec"),
        "{e}"
    );
}

#[test]
fn duplicates_across_files_name_both_places() {
    let good = SOFTMAX.replace("DIMS", "dim");
    let e = match OpDb::from_sources([("ops/a.yaml", good.as_str()), ("ops/b.yaml", good.as_str())])
    {
        Ok(_) => panic!("duplicates loaded"),
        Err(e) => e,
    };
    assert_eq!(
        e.to_string(),
        "ops/b.yaml:2: ltorch.exp: duplicate entry (the first is at ops/a.yaml:2)\n\
         ops/b.yaml:9: ltorch.softmax: duplicate entry (the first is at ops/a.yaml:9)"
    );
    assert_eq!(e.flatten().len(), 2);
}

#[test]
fn every_bad_entry_is_reported_at_once() {
    let text = SOFTMAX.replace("name: ltorch.exp", "name: ltorch.nope");
    let e = load(&text);
    let all: Vec<String> = e.flatten().iter().map(|e| e.to_string()).collect();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].starts_with("ops/test.yaml:2: unknown op"));
    assert!(all[1].starts_with("ops/test.yaml:9: ltorch.softmax: sample 1"));
}

#[test]
fn skips_error_inputs_and_tolerances_are_checked() {
    let base = SOFTMAX.replace("DIMS", "dim");
    let e = load(&format!("{base}  skips:\n    - {{sample: 5, reason: x}}\n"));
    assert_eq!(
        e.to_string(),
        "ops/test.yaml:9: ltorch.softmax: skip 0: sample 5 does not exist (the entry has 2 samples)"
    );
    let e = load(&format!(
        "{base}  skips:\n    - {{device: tpu, reason: x}}\n"
    ));
    assert!(matches!(e, DbError::Syntax { line: 21, .. }), "{e}");
    let e = load(&format!("{base}  error_inputs:\n    - args: [{{shape: [2]}}]\n      attrs: {{dim: 0}}\n      error: Oops\n      message: x\n"));
    assert!(
        e.to_string().contains(
            "unknown variant `Oops`, expected one of `InvalidArgument`, `Promotion`, `Broadcast`"
        ),
        "{e}"
    );
    let e = load(&format!(
        "{base}  tolerances:\n    bf16: {{atol: -1, rtol: 0}}\n"
    ));
    assert!(
        e.to_string()
            .contains("tolerances.bf16: atol (-1) and rtol (0) must be finite and >= 0"),
        "{e}"
    );
    let e = load(&format!(
        "{base}  tolerances:\n    bf16: {{atol: 1, rtol: 0, etol: 3}}\n"
    ));
    assert!(matches!(e, DbError::Syntax { line: 21, .. }), "{e}");
}

#[test]
fn expected_refusals_name_a_transform_the_entry_is_asked_for() {
    let base = SOFTMAX.replace("DIMS", "dim");
    let good =
        format!("{base}  no_rule:\n    jvp: \"no JVP rule\"\n    vmap: \"no batching rule\"\n");
    let db =
        OpDb::from_sources([("ops/test.yaml", good.as_str())]).unwrap_or_else(|e| panic!("{e}"));
    let e = db.by_name("ltorch.softmax").expect("softmax");
    assert_eq!(e.expected_no_rule("jvp"), Some("no JVP rule"));
    assert_eq!(e.expected_no_rule("vmap"), Some("no batching rule"));
    assert_eq!(e.expected_no_rule("grad"), None);
    let e = load(&format!("{base}  no_rule:\n    hessian: x\n"));
    assert_eq!(
        e.to_string(),
        "ops/test.yaml:9: ltorch.softmax: no_rule: \"hessian\" is not one of \"grad\", \"jvp\", \"vmap\""
    );
    let e = load(&format!("{base}  no_rule:\n    jvp: \" \"\n"));
    assert!(
        e.to_string()
            .contains("no_rule.jvp must give a substring of the transform's refusal"),
        "{e}"
    );
    // A transform never asked of the op cannot be expected to refuse it.
    let e = load(&format!(
        "{}  no_rule:\n    grad: x\n",
        base.replace(
            "differentiable: true\n  samples:\n    - args: [{shape: [2, 3]}]",
            "differentiable: false\n  samples:\n    - args: [{shape: [2, 3]}]"
        )
    ));
    assert!(
        e.to_string()
            .contains("no_rule.grad: the op is not differentiable, so grad is never asked"),
        "{e}"
    );
    let e = load(&format!("{base}  no_rule:\n    jvp: x\n    jvp: y\n"));
    assert!(e.to_string().contains("`jvp` is given twice"), "{e}");
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let e = load(&SOFTMAX.replace("attrs: {dim: 1}", "attrs: {dim: 1"));
    match e {
        DbError::Syntax { line, column, .. } => {
            assert!(line >= 17 && column > 0, "{line}:{column}")
        }
        other => panic!("{other:?}"),
    }
    let e = load("name: prims.abs\n");
    assert!(matches!(e, DbError::Syntax { line: 1, .. }), "{e}");
}

#[test]
fn keys_given_twice_are_rejected() {
    let e = load(&SOFTMAX.replace("{DIMS: 1}", "{dim: 1, dim: 0}"));
    assert_eq!(
        e.to_string(),
        "ops/test.yaml:19:14: ltorch.softmax: samples[1].attrs: `dim` is given twice"
    );
    let base = SOFTMAX.replace("DIMS", "dim");
    let e = load(&format!(
        "{base}  tolerances:\n    bf16: {{atol: 1, rtol: 0}}\n    bf16: {{atol: 1, rtol: 0}}\n"
    ));
    assert!(e.to_string().contains("`bf16` is given twice"), "{e}");
    let e = load(&base.replace(
        "differentiable: true\n  samples",
        "differentiable: true\n  differentiable: false\n  samples",
    ));
    assert!(
        e.to_string().contains("duplicate field `differentiable`"),
        "{e}"
    );
}

#[test]
fn empty_files_hold_no_entries() {
    for text in ["", "# only a comment\n", "[]\n"] {
        let db = OpDb::from_sources([("ops/empty.yaml", text)]).unwrap_or_else(|e| panic!("{e}"));
        assert!(db.entries().is_empty());
    }
}

#[test]
fn load_dir_reports_io_errors() {
    match OpDb::load_dir("/nonexistent/opinfo-db/ops") {
        Err(DbError::Io { path, .. }) => assert_eq!(path, "/nonexistent/opinfo-db/ops"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_embedded_files_are_all_valid_yaml_under_their_names() {
    for (name, text) in opinfo_db::BUILTIN_FILES {
        if let Err(e) = opinfo_db::load::parse_file(name, text) {
            panic!("{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..ProptestConfig::default()
    })]

    /// Damaged files give errors, never panics.
    #[test]
    fn damaged_files_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 1..6)) {
        let mut text: Vec<char> = SOFTMAX.replace("DIMS", "dim").chars().collect();
        for (at, kind, c) in edits {
            if text.is_empty() { break; }
            let i = at.index(text.len());
            match kind {
                0 => { text.remove(i); }
                1 => text.insert(i, c),
                2 => text[i] = c,
                _ => text.insert(i, ['-', ':', '[', '{', ' ', '\n', '0'][i % 7]),
            }
        }
        let text: String = text.into_iter().collect();
        let _ = OpDb::from_sources([("ops/test.yaml", text.as_str())]).map(|db| {
            for e in db.entries() {
                for s in e.samples(thunder_ir::Device::Cpu, thunder_ir::DType::F32, 0) {
                    let _ = s.build_trace();
                }
            }
        });
    }
}
