//! Type promotion against tables generated from torch 2.11.0 itself
//! (`tests/data/*.txt`, made with `torch.promote_types` and `torch.result_type`).

use thunder_ir::dtype::{promote_types, DType, NumberType};
use thunder_ir::promotion::{result_type, PromotionOperand};

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
}

fn dtype(s: &str) -> DType {
    DType::parse(s).unwrap_or_else(|| panic!("test data names unknown dtype {s}"))
}

#[test]
fn promote_types_matches_torch_on_every_pair() {
    let mut checked = 0;
    for r in rows(include_str!("data/promote_types.txt")) {
        let (a, b, want) = (dtype(r[0]), dtype(r[1]), r[2]);
        let got = promote_types(a, b);
        match want {
            "error" => assert!(
                got.is_err(),
                "promote_types({a}, {b}) should fail as in torch, got {got:?}"
            ),
            w => assert_eq!(got.ok(), Some(dtype(w)), "promote_types({a}, {b})"),
        }
        checked += 1;
    }
    assert_eq!(checked, DType::ALL.len() * DType::ALL.len());
}

fn operand(s: &str) -> PromotionOperand {
    let (kind, name) = s.split_once(':').expect("kind:name");
    match kind {
        "t" => PromotionOperand::Tensor(dtype(name)),
        "z" => PromotionOperand::ZeroDim(dtype(name)),
        "s" => PromotionOperand::Number(NumberType::parse(name).expect("number type")),
        _ => panic!("bad operand kind {kind}"),
    }
}

#[test]
fn result_type_matches_torch_for_tensors_zero_dim_tensors_and_numbers() {
    let mut checked = 0;
    for r in rows(include_str!("data/result_type.txt")) {
        let ops = [operand(r[0]), operand(r[1])];
        let got = result_type("test", &ops);
        match r[2] {
            // thunder does not model complex32: it must refuse rather than answer wrongly.
            "torch.complex32" => {
                let e = got.expect_err("complex32 results must be refused");
                assert!(e.to_string().contains("complex32"), "{e}");
            }
            "error" => assert!(got.is_err(), "{r:?}"),
            w => assert_eq!(got.ok(), Some(dtype(w)), "result_type({}, {})", r[0], r[1]),
        }
        checked += 1;
    }
    assert!(checked > 700, "only {checked} rows read");
}
