//! How a bench gives up: one clear line and a non-zero exit, never a panic's backtrace.

use std::fmt::Display;

/// What bench helpers return: the error is a sentence for the person running the bench.
pub type BenchResult<T> = Result<T, String>;

/// Prints `what` as one line on stderr and ends the bench process with exit code 1.
pub fn fail(what: impl Display) -> ! {
    eprintln!("bench: {what}");
    std::process::exit(1)
}

/// Unwraps a [`BenchResult`] or ends the process through [`fail`].
pub trait OrFail<T> {
    /// The value, or the end of the bench with the error's sentence.
    fn or_fail(self) -> T;
}

impl<T, E: Display> OrFail<T> for Result<T, E> {
    fn or_fail(self) -> T {
        self.unwrap_or_else(|e| fail(e))
    }
}
