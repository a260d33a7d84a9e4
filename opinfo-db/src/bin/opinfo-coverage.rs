//! `opinfo-coverage`: prints which ops the op database covers, op x {cpu, cuda} x
//! {forward, grad, jvp, vmap}.
//!
//! ```text
//! cargo run -p opinfo-db --bin opinfo-coverage                 # a table for the terminal
//! cargo run -p opinfo-db --bin opinfo-coverage -- --markdown   # the COVERAGE.md document
//! cargo run -p opinfo-db --bin opinfo-coverage -- --dir opinfo-db/ops --output COVERAGE.md
//! ```

use clap::Parser;
use opinfo_db::{coverage, OpDb};
use std::path::PathBuf;
use std::process::ExitCode;

/// Coverage of the thunder-rs op database.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Print the Markdown document (the content of opinfo-db/COVERAGE.md) instead of a table.
    #[arg(long)]
    markdown: bool,
    /// Load the YAML files of this directory instead of the ones built into the binary.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Write the output to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let db = match &args.dir {
        Some(d) => OpDb::load_dir(d),
        None => OpDb::builtin(),
    };
    let db = match db {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: the op database does not load:\n{e}");
            return ExitCode::FAILURE;
        }
    };
    let text = if args.markdown {
        coverage::markdown_document(&db)
    } else {
        format!(
            "{}\n{}\n",
            coverage::table(&db, false),
            coverage::summary(&db)
        )
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        None => print!("{text}"),
    }
    let missing = db.missing_ops();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|o| o.qualified_name()).collect();
        eprintln!(
            "warning: {} ops of thunder-ir have no entry: {}",
            names.len(),
            names.join(", ")
        );
    }
    ExitCode::SUCCESS
}
