//! Hostile trace text: nesting far beyond anything the printer makes is a typed error
//! ([`IrError::TooDeep`]), never a stack overflow.
//!
//! The parser runs on a thread with a small stack here, so that the depth limit, not a large
//! stack, is what keeps these inputs from overflowing it: read without a limit, 100 000 levels
//! take hundreds of MiB of stack. A stack overflow aborts the whole test binary.

use proptest::prelude::*;
use thunder_ir::parser::MAX_NESTING;
use thunder_ir::{parse_trace, Arg, BoundSymbol, IrError, Op, Result, TorchOp, Trace};

/// Far below the 2 MiB of a test thread and the 8 MiB of a main thread. Unoptimized code has
/// big frames: a debug build needs about 170 KiB to parse a one-line trace at all, and about
/// 800 KiB for decompositions nested [`MAX_NESTING`] deep (an optimized build about 190 KiB).
const SMALL_STACK: usize = if cfg!(debug_assertions) {
    1024 * 1024
} else {
    256 * 1024
};

fn parse_on_small_stack(text: String) -> Result<Trace> {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || parse_trace(&text))
        .expect("spawns a thread")
        .join()
        .expect("the parser does not panic")
}

/// Where a nested expression is put in an otherwise valid trace.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// A keyword argument: `ltorch.transpose(x, dim0=E, dim1=0)`.
    Keyword,
    /// A positional operand: `ltorch.add(x, E)`.
    Operand,
    /// The return statement: `return E`.
    Return,
    /// The whole text.
    Raw,
}

impl Place {
    fn text(self, e: &str) -> String {
        let head = "def f(x):\n  # x: \"cpu f32[2, 3]\"\n";
        match self {
            Place::Keyword => {
                format!("{head}  t0 = ltorch.transpose(x, dim0={e}, dim1=0)\n  return t0\n")
            }
            Place::Operand => format!("{head}  t0 = ltorch.add(x, {e})\n  return t0\n"),
            Place::Return => format!("{head}  return {e}\n"),
            Place::Raw => e.to_string(),
        }
    }
    /// The nesting level of `E` itself: arguments sit inside the call.
    fn base(self) -> usize {
        match self {
            Place::Keyword | Place::Operand => 2,
            Place::Return => 1,
            Place::Raw => 0,
        }
    }
}

/// `prefix` (each of `[`, `(`, `-`, `+`) around the literal `1`, with `]` and `)` closed.
fn nested(prefix: &[u8]) -> String {
    let mut s = String::with_capacity(2 * prefix.len() + 1);
    s.extend(prefix.iter().map(|&c| c as char));
    s.push('1');
    s.extend(prefix.iter().rev().filter_map(|&c| match c {
        b'[' => Some(']'),
        b'(' => Some(')'),
        _ => None,
    }));
    s
}

/// How deep the parser must nest to read `prefix` around `1` at `place`: one level per
/// opener before the first `+` (which it rejects where it finds it), less one where a `-`
/// directly precedes the literal (`-1` is read as one literal).
fn levels(place: Place, prefix: &[u8]) -> usize {
    let openers = prefix.iter().take_while(|&&c| c != b'+').count();
    let fused = openers == prefix.len() && prefix.last() == Some(&b'-');
    place.base() + openers - usize::from(fused)
}

fn check_nested(place: Place, prefix: &[u8]) -> std::result::Result<(), TestCaseError> {
    let got = parse_on_small_stack(place.text(&nested(prefix)));
    match place {
        // The text is no trace: rejected at its first line, before any expression is read.
        Place::Raw => prop_assert!(
            matches!(got, Err(IrError::Parse { line: 1, .. })),
            "{got:?}"
        ),
        _ if levels(place, prefix) > MAX_NESTING => match got {
            Err(IrError::TooDeep { limit, what, .. }) => {
                prop_assert_eq!(limit, MAX_NESTING);
                prop_assert!(what.starts_with("expressions"), "{}", what);
            }
            other => prop_assert!(false, "expected TooDeep, got {:?}", other.map(|_| ())),
        },
        // Within the limit: parsed (`----1` is a fine int), or an ordinary parse error.
        _ => prop_assert!(
            matches!(got, Ok(_) | Err(IrError::Parse { .. })),
            "{:?}",
            got.map(|_| ())
        ),
    }
    Ok(())
}

/// Openers of one of five mixes, from a seed.
fn prefix(len: usize, mix: u8, seed: u64) -> Vec<u8> {
    let alphabet: &[u8] = match mix {
        0 => b"-",
        1 => b"[",
        2 => b"(",
        3 => b"[(-",
        _ => b"[(-+",
    };
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            // xorshift: cheap, and enough to mix the kinds.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize]
        })
        .collect()
}

fn depth() -> impl Strategy<Value = usize> {
    prop_oneof![
        0..MAX_NESTING - 4,
        MAX_NESTING - 4..MAX_NESTING + 4,
        MAX_NESTING + 4..100_000usize,
    ]
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        Just(Place::Keyword),
        Just(Place::Operand),
        Just(Place::Return),
        Just(Place::Raw),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn deep_expressions_are_refused_not_a_crash(
        len in depth(),
        mix in 0u8..5,
        seed in any::<u64>(),
        place in place(),
    ) {
        check_nested(place, &prefix(len, mix, seed))?;
    }

    #[test]
    fn deep_decompositions_are_refused_not_a_crash(depth in 0..2 * MAX_NESTING) {
        let got = parse_on_small_stack(nested_decompositions(depth));
        if depth > MAX_NESTING {
            prop_assert!(
                matches!(&got, Err(IrError::TooDeep { what, limit, .. }) if what == "decompositions" && *limit == MAX_NESTING),
                "{:?}",
                got.map(|_| ())
            );
        } else {
            // A torch-level op whose decomposition is the same op, `depth` times: valid.
            let t = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(t.bound_symbols.len(), 1);
        }
    }
}

/// `t0 = ltorch.neg(x)`, each line a decomposition of the one before.
fn nested_decompositions(depth: usize) -> String {
    let mut s = String::from("def f(x):\n  # x: \"cpu f32[2, 3]\"\n  t0 = ltorch.neg(x)\n");
    for d in 1..=depth {
        s.push_str(&" ".repeat(2 + 2 * d));
        s.push_str("# t0 = ltorch.neg(x)\n");
    }
    s.push_str("  return t0\n");
    s
}

/// The two inputs of the issue, about 100 KB each: `[[[[...` and `----...1`.
#[test]
fn the_issues_examples_are_refused_on_a_small_stack() {
    const N: usize = 100_000;
    for e in ["[".repeat(N), format!("{}1", "-".repeat(N))] {
        for place in [Place::Keyword, Place::Operand, Place::Return] {
            match parse_on_small_stack(place.text(&e)) {
                Err(IrError::TooDeep {
                    line, limit, text, ..
                }) => {
                    assert_eq!((line, limit), (3, MAX_NESTING), "{place:?}");
                    assert!(text.len() < 200, "the error keeps the line short");
                }
                other => panic!("{place:?}: expected TooDeep, got {:?}", other.map(|_| ())),
            }
        }
        assert!(parse_on_small_stack(e).is_err());
    }
    let e = parse_on_small_stack(Place::Keyword.text(&"[".repeat(N))).unwrap_err();
    let m = e.to_string();
    assert!(m.starts_with("parse error at line 3, column "), "{m}");
    assert!(
        m.contains(&format!(": expressions ([...], (...), calls, unary minus) nested more than {MAX_NESTING} levels deep\n  ltorch.transpose(x, dim0=[[[")),
        "{m}"
    );
}

/// A trace put together by hand (its fields are public) is held to the same limit by the
/// verifier, before its recursive checks.
#[test]
fn the_verifier_refuses_deep_decompositions_built_by_hand() {
    let mut t =
        parse_trace("def f(x):\n  # x: \"cpu f32[2]\"\n  t0 = ltorch.neg(x)\n  return t0\n")
            .expect("parses");
    let neg = |subsymbols| BoundSymbol {
        op: Op::Torch(TorchOp::Neg),
        args: vec![Arg::Value(t.inputs[0])],
        attrs: vec![],
        outputs: t.outputs.clone(),
        subsymbols,
    };
    let mut b = neg(vec![]);
    for _ in 0..2000 {
        b = neg(vec![b]);
    }
    t.bound_symbols = vec![b];
    let got = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(SMALL_STACK)
            .spawn_scoped(s, || t.verify())
            .expect("spawns a thread")
            .join()
            .expect("the verifier does not panic")
    });
    match got {
        Err(IrError::Verify(m)) => assert!(
            m.starts_with(&format!(
                "decompositions are nested more than {MAX_NESTING} levels deep"
            )),
            "{m}"
        ),
        other => panic!("expected a verifier error, got {other:?}"),
    }
}

/// Exactly [`MAX_NESTING`] levels are read; one more is refused.
#[test]
fn the_limit_is_exact() {
    let deep = |r: &Result<Trace>| matches!(r, Err(IrError::TooDeep { .. }));
    // Arguments sit 2 levels deep: the call, then the argument.
    let list = |n: usize| Place::Keyword.text(&nested(&vec![b'['; n]));
    assert!(!deep(&parse_on_small_stack(list(MAX_NESTING - 2))));
    assert!(deep(&parse_on_small_stack(list(MAX_NESTING - 1))));
    // `- - ... - 1` with spaces: each minus is a level; the fused `-1` is not.
    let minus = |n: usize| Place::Keyword.text(&format!("{}1", "- ".repeat(n)));
    parse_on_small_stack(minus(MAX_NESTING - 2)).expect("an even count of minus is dim0=1");
    assert!(deep(&parse_on_small_stack(minus(MAX_NESTING - 1))));
    parse_on_small_stack(nested_decompositions(MAX_NESTING)).expect("at the limit");
    assert!(deep(&parse_on_small_stack(nested_decompositions(
        MAX_NESTING + 1
    ))));
}
