//! One error type for the whole crate. Each variant maps onto exactly one C status code
//! (`capi.rs`), so a Rust user and a C user see the same failure for the same bad input.

use std::fmt;

/// Everything that can go wrong in this crate.
///
/// `#[non_exhaustive]`: new kinds of failure may be added in minor releases, so a `match`
/// on it needs a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A dimension is zero, too large (`cols >= 2^24`), or a size computation overflows.
    InvalidShape(String),
    /// A buffer's length does not match what the matrix shape requires.
    LengthMismatch {
        /// Which buffer.
        what: &'static str,
        /// The length the shape requires.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// A format id that this crate does not know.
    InvalidFormat(i64),
    /// Values that do not make a valid ternary matrix: packed or imported bytes that do not
    /// decode (a code 3 in I2_S, an index out of range in a LUT format), a trit outside
    /// {-1, 0, 1}, a scale that is not positive.
    InvalidData(String),
    /// A NaN or infinity in weights, activations or a scale.
    NonFinite {
        /// Which input (`"weights"`, `"activations"`, `"scale"`, ...).
        what: &'static str,
        /// The index of the first non-finite value in it.
        index: usize,
    },
    /// `BITNET_KERNEL` named a kernel this CPU (or this build) cannot run, or a name that does not exist.
    KernelUnavailable(String),
    /// The format exists but this build has no kernel or packer for it yet; or a ggml type
    /// this crate does not decode, or TQ blocks whose scales agree only within rows (per-row
    /// scales are not supported yet).
    Unsupported(String),
    /// Memory could not be allocated.
    Alloc,
    /// Reading or writing a file failed (the operating system's message).
    Io(String),
    /// A bug: a panic caught at the C boundary, or an invariant that did not hold.
    Internal(String),
}

/// Shorthand for `std::result::Result<T, Error>`.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidShape(s) => write!(f, "invalid shape: {s}"),
            Error::LengthMismatch {
                what,
                expected,
                got,
            } => write!(
                f,
                "length mismatch: {what} has {got} elements, the shape needs {expected}"
            ),
            Error::InvalidFormat(id) => write!(f, "unknown format id {id}"),
            Error::InvalidData(s) => write!(f, "invalid data: {s}"),
            Error::NonFinite { what, index } => {
                write!(f, "{what}[{index}] is NaN or infinity")
            }
            Error::KernelUnavailable(s) => write!(f, "kernel unavailable: {s}"),
            Error::Unsupported(s) => write!(f, "unsupported: {s}"),
            Error::Alloc => write!(f, "memory allocation failed"),
            Error::Io(s) => write!(f, "I/O error: {s}"),
            Error::Internal(s) => write!(f, "internal error: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// Checks a buffer length, producing [`Error::LengthMismatch`] on failure.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}
