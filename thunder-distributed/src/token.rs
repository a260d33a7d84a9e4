//! The per-job token every rendezvous hello carries: rank 0 talks only to processes that know it.
//!
//! Where it comes from (the first that is set, read by [`Token::from_vars`]):
//! 1. `THUNDER_RDZV_TOKEN`: a secret the launcher gives every rank. `thunder-bench --gpus N`
//!    sets 32 random bytes (hex) for its children; for torchrun or SLURM, export the same random
//!    value to every rank (`export THUNDER_RDZV_TOKEN=$(openssl rand -hex 32)` before the
//!    launch). The only source that is a real secret.
//! 2. `TORCHELASTIC_RUN_ID` (torchrun's `--rdzv-id`), unless it is torchrun's default `none`:
//!    a random UUID under `torchrun --standalone`, but an `--rdzv-id` given on a command line is
//!    visible to every user of the machine (`ps`).
//! 3. `SLURM_JOB_ID`: public (`squeue` lists it). It keeps other jobs' ranks out, not attackers.
//! 4. None: the hello carries an empty token and rank 0 says so on stderr.
//!
//! Derived tokens (2, 3) are guessable by anyone who can list the job: they stop accidents (a
//! stale rank of another run on the same port), not a determined stranger. The token travels
//! in clear over TCP, as the NCCL unique id does after it: someone who can read the network
//! between the ranks can read both.

use crate::error::{Error, Result};
use std::io::Read;

/// The variable a launcher sets to the job's secret.
pub const TOKEN_VAR: &str = "THUNDER_RDZV_TOKEN";

/// The longest token accepted (bytes): rank 0 never reads more from an unknown client.
pub const MAX_TOKEN: usize = 1024;

/// Where a rank's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `THUNDER_RDZV_TOKEN` (or [`Token::new`]): a secret chosen by the launcher.
    Secret,
    /// torchrun's `TORCHELASTIC_RUN_ID`.
    TorchElastic,
    /// SLURM's `SLURM_JOB_ID`.
    Slurm,
    /// Nothing: an empty token that every client knows.
    None,
}

/// A rendezvous token. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    bytes: Vec<u8>,
    source: TokenSource,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({:?}, {} bytes)", self.source, self.bytes.len())
    }
}

impl Token {
    /// A secret token (what `THUNDER_RDZV_TOKEN` holds): 1 to [`MAX_TOKEN`] bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Token> {
        let bytes = secret.into();
        if bytes.is_empty() || bytes.len() > MAX_TOKEN {
            return Err(Error::BadVar {
                var: TOKEN_VAR,
                value: format!("<{} bytes>", bytes.len()),
                why: format!(
                    "a rendezvous token has 1 to {MAX_TOKEN} bytes (e.g. `openssl rand -hex 32`)"
                ),
            });
        }
        Ok(Token {
            bytes,
            source: TokenSource::Secret,
        })
    }

    /// No token (every hello carries an empty one).
    pub fn none() -> Token {
        Token {
            bytes: Vec::new(),
            source: TokenSource::None,
        }
    }

    /// The token of this launch, from `get` (a variable's value by name); see the module
    /// documentation for the order.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Token> {
        if let Some(v) = get(TOKEN_VAR) {
            // The value itself never goes into an error: it is the secret.
            return Token::new(v.into_bytes());
        }
        let derived = |prefix: &str, v: String, source| Token {
            bytes: format!("{prefix}:{v}").into_bytes(),
            source,
        };
        // torchrun without --rdzv-id or --standalone sets the same "none" for every job.
        if let Some(id) = get("TORCHELASTIC_RUN_ID")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && v != "none" && v.len() <= MAX_TOKEN / 2)
        {
            return Ok(derived("torchelastic", id, TokenSource::TorchElastic));
        }
        if let Some(id) = get("SLURM_JOB_ID")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && v.len() <= MAX_TOKEN / 2)
        {
            return Ok(derived("slurm", id, TokenSource::Slurm));
        }
        Ok(Token::none())
    }

    /// Where it came from.
    pub fn source(&self) -> TokenSource {
        self.source
    }

    /// The bytes a hello carries.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `given` is this token, in time that does not depend on where they differ (a
    /// stranger must not learn the token byte by byte from rank 0's answer times). Only the
    /// length may leak.
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        if given.len() != self.bytes.len() {
            return false;
        }
        let diff = self
            .bytes
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| std::hint::black_box(acc | (a ^ b)));
        diff == 0
    }
}

/// A new random secret for [`TOKEN_VAR`]: 32 bytes from the OS's generator, as 64 hex digits
/// (what a launcher such as `thunder-bench --gpus N` hands its ranks).
pub fn random_secret() -> Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::BadVar {
            var: TOKEN_VAR,
            value: String::new(),
            why: format!("cannot read /dev/urandom to make one ({e}); set it yourself"),
        })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_secret_wins_then_torchrun_then_slurm_then_none() {
        let all = [
            (TOKEN_VAR, "s3cret"),
            ("TORCHELASTIC_RUN_ID", "6f1c"),
            ("SLURM_JOB_ID", "4242"),
        ];
        let t = Token::from_vars(vars(&all)).unwrap();
        assert_eq!(
            (t.source(), t.as_bytes()),
            (TokenSource::Secret, &b"s3cret"[..])
        );
        let t = Token::from_vars(vars(&all[1..])).unwrap();
        assert_eq!(t.source(), TokenSource::TorchElastic);
        assert_eq!(t.as_bytes(), b"torchelastic:6f1c");
        // torchrun's default run id is the same for every job: not a token.
        let t = Token::from_vars(vars(&[("TORCHELASTIC_RUN_ID", "none"), all[2]])).unwrap();
        assert_eq!(
            (t.source(), t.as_bytes()),
            (TokenSource::Slurm, &b"slurm:4242"[..])
        );
        let t = Token::from_vars(vars(&[("TORCHELASTIC_RUN_ID", "none")])).unwrap();
        assert_eq!(t, Token::none());
        assert!(t.as_bytes().is_empty());
    }

    #[test]
    fn an_empty_or_huge_secret_is_refused_without_showing_it() {
        for v in [String::new(), "x".repeat(MAX_TOKEN + 1)] {
            let e = Token::from_vars(vars(&[(TOKEN_VAR, &v)]))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("THUNDER_RDZV_TOKEN=\"<"), "{e}");
            assert!(!e.contains("xxxx"), "{e}");
        }
        let t = Token::new("abc").unwrap();
        assert_eq!(format!("{t:?}"), "Token(Secret, 3 bytes)");
    }

    #[test]
    fn tokens_match_only_themselves() {
        let t = Token::new("0123456789abcdef").unwrap();
        assert!(t.matches(b"0123456789abcdef"));
        for other in [
            &b"0123456789abcdeF"[..],
            b"1123456789abcdef",
            b"0123456789abcde",
            b"",
        ] {
            assert!(!t.matches(other), "{other:?}");
        }
        assert!(Token::none().matches(b""));
    }

    #[test]
    fn random_secrets_are_64_hex_digits_and_differ() {
        let (a, b) = (random_secret().unwrap(), random_secret().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(Token::new(a).unwrap().source(), TokenSource::Secret);
    }
}
