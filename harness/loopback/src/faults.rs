//! Fault injection: the [`Faults`] a device can be told to simulate, the JSON control file that
//! flips them at run time, and the per-connection byte meter that decides when a connection is
//! dropped or stalled.
//!
//! ## Control file
//!
//! `<root>/.loopback/faults.json` (device path `/.loopback/faults.json`), polled every 100 ms
//! while the device runs:
//!
//! ```json
//! {"drop_after_bytes": 65536, "stall_after_bytes": null, "corrupt_push": false, "offline": false}
//! ```
//!
//! Every field is optional (missing = `null`/`false`); unknown fields make the file invalid.
//! The last change wins: each [`crate::LoopbackDevice::set_faults`] call and each change of the
//! file's content (including its creation) replaces the active faults as a whole, and deleting
//! the file clears them all. An invalid file is reported through the log callback and ignored
//! (the active faults stay as they were).
//!
//! ## Byte counting
//!
//! `drop_after_bytes` / `stall_after_bytes` count raw bytes on one connection, both directions,
//! message headers included, from the later of the connection's start and the last change of the
//! active faults (so arming a fault at run time gives every open connection the full budget).
//! A drop writes or reads exactly up to the budget and then shuts the socket down; a stall stops
//! reading and writing on that connection until the faults change, the host hangs up, the device
//! goes offline or stops.

use crate::paths::DeviceFs;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Faults to simulate. `Faults::default()` is a healthy device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Close a connection once this many bytes went over it (see the module docs).
    pub drop_after_bytes: Option<u64>,
    /// Stop all traffic on a connection once this many bytes went over it.
    pub stall_after_bytes: Option<u64>,
    /// Flip one byte of every file received by sync SEND after it is written (a non-empty file
    /// gets byte `len/2` XORed with 0xff; an empty file gets one byte appended).
    pub corrupt_push: bool,
    /// Close every connection and refuse new ones (they are accepted and closed at once).
    pub offline: bool,
}

/// Path of the control file for a device root.
pub fn control_file(root: &Path) -> PathBuf {
    root.join(".loopback").join("faults.json")
}

/// A control file that exists but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlFileError {
    #[error("reading fault control file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("parsing fault control file {path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
}

/// Device path of the control file.
pub const CONTROL_DEVICE_PATH: &str = "/.loopback/faults.json";
/// A larger control file is refused (it is a few dozen bytes of JSON).
const MAX_CONTROL: u64 = 64 * 1024;

/// Raw content of the control file, `None` when it does not exist. Read inside the root like
/// any device path: the device's shell can write the file, so a symlink there must not make
/// the device read a host file (or block on a FIFO).
pub(crate) fn read_control_bytes(fs: &DeviceFs) -> Result<Option<Vec<u8>>, ControlFileError> {
    fs.read_small(CONTROL_DEVICE_PATH.as_bytes(), MAX_CONTROL)
        .map_err(|source| ControlFileError::Read { path: control_file(fs.root()), source })
}

/// Parses control file content.
pub fn parse_control(path: &Path, bytes: &[u8]) -> Result<Faults, ControlFileError> {
    serde_json::from_slice(bytes).map_err(|source| ControlFileError::Parse { path: path.to_path_buf(), source })
}

/// The active faults plus a change counter (the epoch) that meters use to restart counting.
#[derive(Debug, Default)]
pub(crate) struct FaultCell {
    inner: Mutex<(Faults, u64)>,
}

impl FaultCell {
    pub fn new(f: Faults) -> FaultCell {
        FaultCell { inner: Mutex::new((f, 0)) }
    }

    /// Replaces the active faults and starts a new epoch.
    pub fn set(&self, f: Faults) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = f;
        g.1 += 1;
    }

    /// The active faults and their epoch.
    pub fn snapshot(&self) -> (Faults, u64) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (g.0.clone(), g.1)
    }
}

/// What a connection may do next, according to its meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// No byte limit applies.
    Unlimited,
    /// This many bytes may pass before a fault triggers (always > 0).
    Bytes(u64),
    /// The stall threshold is reached: wait.
    Stalled,
    /// The drop threshold is reached: close the connection.
    Dropped,
    /// The device is offline: close the connection.
    Offline,
}

#[derive(Debug)]
struct MeterState {
    bytes: u64,
    epoch: u64,
    baseline: u64,
}

/// Counts the bytes of one connection against the active faults.
#[derive(Debug)]
pub(crate) struct Meter {
    state: Mutex<MeterState>,
}

impl Meter {
    pub fn new(epoch: u64) -> Meter {
        Meter { state: Mutex::new(MeterState { bytes: 0, epoch, baseline: 0 }) }
    }

    pub fn add(&self, n: u64) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).bytes += n;
    }

    pub fn budget(&self, cell: &FaultCell) -> Budget {
        let (f, epoch) = cell.snapshot();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.epoch != epoch {
            st.epoch = epoch;
            st.baseline = st.bytes;
        }
        if f.offline {
            return Budget::Offline;
        }
        let counted = st.bytes - st.baseline;
        let mut limit: Option<u64> = None;
        if let Some(d) = f.drop_after_bytes {
            if counted >= d {
                return Budget::Dropped;
            }
            limit = Some(d - counted);
        }
        if let Some(s) = f.stall_after_bytes {
            if counted >= s {
                return Budget::Stalled;
            }
            limit = Some(limit.map_or(s - counted, |l| l.min(s - counted)));
        }
        limit.map_or(Budget::Unlimited, Budget::Bytes)
    }
}

/// Applies `corrupt_push` to a freshly written file.
pub(crate) fn corrupt_file(mut f: &std::fs::File) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let len = f.metadata()?.len();
    if len == 0 {
        return f.write_all(&[0xff]);
    }
    let pos = len / 2;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(pos))?;
    f.read_exact(&mut b)?;
    f.seek(SeekFrom::Start(pos))?;
    f.write_all(&[b[0] ^ 0xff])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_file_parses_partial_and_rejects_unknown() {
        let p = Path::new("x.json");
        let f = parse_control(p, br#"{"drop_after_bytes": 10, "offline": true}"#).unwrap();
        assert_eq!(f, Faults { drop_after_bytes: Some(10), offline: true, ..Faults::default() });
        assert_eq!(parse_control(p, b"{}").unwrap(), Faults::default());
        assert!(parse_control(p, br#"{"ofline": true}"#).is_err());
        assert!(parse_control(p, b"{").is_err());
    }

    #[test]
    fn meter_counts_from_last_change() {
        let cell = FaultCell::new(Faults::default());
        let m = Meter::new(0);
        assert_eq!(m.budget(&cell), Budget::Unlimited);
        m.add(100);
        cell.set(Faults { drop_after_bytes: Some(50), ..Faults::default() });
        // Arming restarts the count: 100 bytes already passed do not count.
        assert_eq!(m.budget(&cell), Budget::Bytes(50));
        m.add(30);
        assert_eq!(m.budget(&cell), Budget::Bytes(20));
        m.add(20);
        assert_eq!(m.budget(&cell), Budget::Dropped);
        cell.set(Faults { drop_after_bytes: Some(50), stall_after_bytes: Some(10), ..Faults::default() });
        assert_eq!(m.budget(&cell), Budget::Bytes(10));
        m.add(10);
        assert_eq!(m.budget(&cell), Budget::Stalled);
        cell.set(Faults { offline: true, ..Faults::default() });
        assert_eq!(m.budget(&cell), Budget::Offline);
    }

    #[test]
    fn corrupt_file_changes_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abcdef").unwrap();
        let rw = || std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
        corrupt_file(&rw()).unwrap();
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), 6);
        assert_ne!(got, b"abcdef");
        std::fs::write(&p, b"").unwrap();
        corrupt_file(&rw()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap().len(), 1);
    }
}
