//! Writing data to stdout fallibly: `println!` panics when the reader went away (`| head`),
//! these return the `BrokenPipe` error that `error.rs` turns into a quiet exit 0.

use std::io::Write;

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// `print!` that returns the write error from the enclosing function instead of panicking.
macro_rules! out {
    ($($argument:tt)*) => {
        $crate::cli::stdout::print(&format!($($argument)*))?
    };
}

/// `println!` that returns the write error from the enclosing function instead of panicking.
macro_rules! outln {
    () => {
        $crate::cli::stdout::print("\n")?
    };
    ($($argument:tt)*) => {
        $crate::cli::stdout::print(&format!("{}\n", format_args!($($argument)*)))?
    };
}
