//! `thunder-bench`: the thunder-rs harness, as a library (the `thunder-bench` binary is its
//! command line).
//!
//! - [`llama`]: `thunder-bench llama2`, end-to-end training steps of the Llama-2 family,
//!   compiled against eager.
//! - [`ops`]: `thunder-bench ops`, microbenchmarks of a Llama-2-7B step's memory-bound patterns.
//! - [`memory`]: a device's free memory, and the error that refuses a run needing more.
//! - [`coverage`]: `thunder-bench coverage`, opinfo-db's coverage report (the grad, jvp and vmap
//!   columns ask thunder-transforms which rules exist).

pub mod coverage;
pub mod llama;
pub mod memory;
pub mod ops;

/// Writes `text` to standard output. A reader that went away (`thunder-bench trace | head`: a
/// broken pipe) ends the output quietly, as command-line tools do, instead of the panic of
/// `print!`; any other write error is returned.
pub fn out(text: &str) -> std::io::Result<()> {
    write_quietly(&mut std::io::stdout().lock(), text)
}

fn write_quietly(w: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod out_tests {
    use std::io::{Error, ErrorKind, Write};

    struct Closed(ErrorKind);
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(Error::new(self.0, "closed"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reader_that_went_away_ends_the_output_quietly_and_other_errors_are_returned() {
        assert!(super::write_quietly(&mut Closed(ErrorKind::BrokenPipe), "text").is_ok());
        let e = super::write_quietly(&mut Closed(ErrorKind::PermissionDenied), "text");
        assert_eq!(e.unwrap_err().kind(), ErrorKind::PermissionDenied);
        let mut v = Vec::new();
        super::write_quietly(&mut v, "text").unwrap();
        assert_eq!(v, b"text");
    }
}
