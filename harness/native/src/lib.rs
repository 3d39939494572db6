//! quadbench-native: what the harness checks before it reads or loads a file, shared by the host
//! crates and the device-side runner (so it depends on `libc`, `libloading` and `thiserror`
//! only).
//!
//! - [`file`]: open a path only if it is a regular file (symlinks followed), never blocking on a
//!   FIFO; a symlink to `/dev/zero` or a pipe would otherwise be read forever.
//! - [`elf`]: a header-only check that a shared library is complete and built for this process,
//!   run before every `dlopen` (a truncated library kills the process with SIGBUS).
//! - [`ort`]: the single ONNX Runtime version probe (`OrtGetApiBase`) and symbol check.

pub mod elf;
pub mod file;
pub mod ort;

pub use elf::{ElfError, ElfInfo, check_shared_library};
pub use file::{FileError, FileKind, non_regular_kind, open_regular};
pub use ort::ProbeError;
