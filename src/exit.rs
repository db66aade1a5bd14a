//! Exit codes, the same for every command (ARCHITECTURE.md §5). A leaf:
//! every layer that decides how it failed names its code from here.

/// Ok, verified.
pub const OK: u8 = 0;
/// Bad input, usage or infrastructure error.
pub const BAD_INPUT: u8 = 1;
/// Verification failed (mismatch, unexpected hash, tampered source, signatures).
pub const VERIFICATION_FAILED: u8 = 2;
/// Blocked or inconclusive (an earlier stage not verified, a seed unavailable).
pub const BLOCKED: u8 = 3;
/// A step failed.
pub const STEP_FAILED: u8 = 4;
/// Interrupted by Ctrl-C or SIGTERM (the shell's 128 + SIGINT).
pub const INTERRUPTED: u8 = 130;
