//! A structural check of an ELF shared library before it is `dlopen`ed.
//!
//! `dlopen` maps a library's segments as the headers describe them; when the file is shorter
//! than that (an interrupted copy or download), the first touch of a page past the end of the
//! file kills the process with SIGBUS, with no message. [`check_shared_library`] reads only the
//! headers and refuses such a file with a message instead: ELF magic, class, byte order and
//! machine of this process, a shared object, and the program headers (every segment's file
//! bytes), the section-header table and every section with file contents inside the file.
//! It proves neither that the bytes are intact nor that the library works: a pinned checksum
//! (the runtime crate) and loading it do.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::file::{FileError, open_regular};

const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const SHT_NOBITS: u32 = 8;
const PN_XNUM: u16 = 0xffff;

/// Why a file is not a loadable shared library for this process.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not an elf shared library ({size} bytes, no elf magic at its start)", path.display())]
    NotElf { path: PathBuf, size: u64 },
    #[error(
        "{} is truncated or corrupt: its {what} ends at byte {end} but the file has only {size} bytes (an interrupted copy or download); loading it would crash the process",
        path.display()
    )]
    Truncated { path: PathBuf, what: String, end: u64, size: u64 },
    #[error("{} is built for {found}, this process is {expected}", path.display())]
    Foreign { path: PathBuf, found: String, expected: String },
    #[error("{} is an elf {found}, not a shared library", path.display())]
    NotShared { path: PathBuf, found: &'static str },
    #[error("{} has malformed elf headers: {problem}", path.display())]
    Malformed { path: PathBuf, problem: String },
}

/// What the headers of a checked library say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// 32 or 64.
    pub bits: u8,
    /// `e_machine` (62 x86-64, 183 aarch64, ...).
    pub machine: u16,
    /// File size in bytes.
    pub size: u64,
    /// Number of loadable segments.
    pub load_segments: usize,
}

/// `e_machine` of the architecture this process runs on; `None` where it is not known here (the
/// machine is then not compared).
pub fn host_machine() -> Option<u16> {
    if cfg!(target_arch = "x86_64") {
        Some(62)
    } else if cfg!(target_arch = "aarch64") {
        Some(183)
    } else if cfg!(target_arch = "x86") {
        Some(3)
    } else if cfg!(target_arch = "arm") {
        Some(40)
    } else if cfg!(target_arch = "riscv64") {
        Some(243)
    } else {
        None
    }
}

fn machine_name(m: u16) -> String {
    match m {
        3 => "x86".into(),
        40 => "arm".into(),
        62 => "x86-64".into(),
        183 => "aarch64".into(),
        243 => "risc-v".into(),
        other => format!("elf machine {other}"),
    }
}

fn type_name(t: u16) -> &'static str {
    match t {
        0 => "file of no type",
        1 => "relocatable object",
        2 => "executable",
        4 => "core dump",
        _ => "file of unknown type",
    }
}

/// Reads integers of the file's class and byte order (already checked to be the host's).
struct Fields<'a> {
    bytes: &'a [u8],
    wide: bool,
}

impl Fields<'_> {
    fn u16(&self, at: usize) -> u16 {
        u16::from_ne_bytes([self.bytes[at], self.bytes[at + 1]])
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes"))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_ne_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }
    /// An address-sized field: at `at64` in a 64-bit file, at `at32` in a 32-bit one.
    fn word(&self, at64: usize, at32: usize) -> u64 {
        if self.wide { self.u64(at64) } else { u64::from(self.u32(at32)) }
    }
}

/// Checks that `path` is a complete ELF shared library this process could `dlopen`, reading only
/// its headers (a few kilobytes), never mapping or running it.
pub fn check_shared_library(path: &Path) -> Result<ElfInfo, ElfError> {
    let mut file = open_regular(path)?;
    let read_err = |source| ElfError::Read { path: path.to_path_buf(), source };
    let size = file.metadata().map_err(read_err)?.len();
    let mut ident = [0u8; 64];
    let got = read_up_to(&mut file, &mut ident).map_err(read_err)?;
    if got < 16 || ident[..4] != *b"\x7fELF" {
        return Err(ElfError::NotElf { path: path.to_path_buf(), size });
    }
    let foreign = |found: String, expected: String| ElfError::Foreign { path: path.to_path_buf(), found, expected };
    let wide = match ident[4] {
        1 => false,
        2 => true,
        c => return Err(ElfError::Malformed { path: path.to_path_buf(), problem: format!("elf class {c}") }),
    };
    let bits: u8 = if wide { 64 } else { 32 };
    let host_bits = (usize::BITS) as u8;
    if bits != host_bits {
        return Err(foreign(format!("{bits}-bit"), format!("{host_bits}-bit")));
    }
    let little = match ident[5] {
        1 => true,
        2 => false,
        d => return Err(ElfError::Malformed { path: path.to_path_buf(), problem: format!("elf data encoding {d}") }),
    };
    if little != cfg!(target_endian = "little") {
        let name = |l: bool| if l { "little-endian" } else { "big-endian" }.to_string();
        return Err(foreign(name(little), name(!little)));
    }
    let header_len = if wide { 64 } else { 52 };
    if got < header_len {
        return Err(ElfError::Truncated {
            path: path.to_path_buf(),
            what: "elf header".into(),
            end: header_len as u64,
            size,
        });
    }
    let h = Fields { bytes: &ident, wide };
    let e_type = h.u16(16);
    let machine = h.u16(18);
    if let Some(host) = host_machine()
        && machine != host
    {
        return Err(foreign(machine_name(machine), machine_name(host)));
    }
    if e_type != ET_DYN {
        return Err(ElfError::NotShared { path: path.to_path_buf(), found: type_name(e_type) });
    }
    let phoff = h.word(32, 28);
    let shoff = h.word(40, 32);
    let (phentsize, mut phnum) = if wide { (h.u16(54), h.u16(56)) } else { (h.u16(42), h.u16(44)) };
    let (shentsize, shnum) = if wide { (h.u16(58), h.u16(60)) } else { (h.u16(46), h.u16(48)) };
    let (min_ph, min_sh) = if wide { (56u16, 64u16) } else { (32, 40) };
    let malformed = |problem: String| ElfError::Malformed { path: path.to_path_buf(), problem };
    let within = |what: &str, offset: u64, len: u64| -> Result<(), ElfError> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| malformed(format!("{what} at offset {offset} with {len} bytes overflows")))?;
        if end > size {
            return Err(ElfError::Truncated { path: path.to_path_buf(), what: what.to_string(), end, size });
        }
        Ok(())
    };

    // Section headers first: with extended numbering, section 0 holds the real counts.
    let mut sections = Vec::new();
    if shoff != 0 {
        if shentsize < min_sh {
            return Err(malformed(format!("section header size {shentsize} (at least {min_sh} expected)")));
        }
        within("section-header table", shoff, u64::from(shentsize))?;
        let first = read_at(&mut file, shoff, usize::from(shentsize)).map_err(read_err)?;
        let s0 = Fields { bytes: &first, wide };
        let count = if shnum == 0 { s0.word(32, 20) } else { u64::from(shnum) };
        if phnum == PN_XNUM {
            phnum = u16::try_from(s0.u32(if wide { 44 } else { 28 })).unwrap_or(u16::MAX);
        }
        let table_len = count
            .checked_mul(u64::from(shentsize))
            .ok_or_else(|| malformed(format!("{count} section headers overflow")))?;
        within("section-header table", shoff, table_len)?;
        let table = read_at(&mut file, shoff, table_len as usize).map_err(read_err)?;
        for (i, entry) in table.chunks_exact(usize::from(shentsize)).enumerate() {
            let s = Fields { bytes: entry, wide };
            let (sh_type, offset, len) = (s.u32(4), s.word(24, 16), s.word(32, 20));
            if i > 0 && sh_type != SHT_NOBITS && len > 0 {
                sections.push((i, offset, len));
            }
        }
    }
    if phentsize < min_ph && phnum > 0 {
        return Err(malformed(format!("program header size {phentsize} (at least {min_ph} expected)")));
    }
    let ph_len = u64::from(phnum) * u64::from(phentsize);
    within("program-header table", phoff, ph_len)?;
    let table = read_at(&mut file, phoff, ph_len as usize).map_err(read_err)?;
    let mut load_segments = 0;
    for (i, entry) in table.chunks_exact(usize::from(phentsize.max(1))).enumerate() {
        let p = Fields { bytes: entry, wide };
        let p_type = p.u32(0);
        let (offset, filesz) = if wide { (p.u64(8), p.u64(32)) } else { (u64::from(p.u32(4)), u64::from(p.u32(16))) };
        if p_type == PT_LOAD {
            load_segments += 1;
        }
        if filesz > 0 {
            within(&format!("segment {i}"), offset, filesz)?;
        }
    }
    if load_segments == 0 {
        return Err(malformed("no loadable segment".into()));
    }
    for (i, offset, len) in sections {
        within(&format!("section {i}"), offset, len)?;
    }
    Ok(ElfInfo { bits, machine, size, load_segments })
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_at(file: &mut File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    file.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The C library this test process runs on, found in /proc/self/maps (not a guessed path).
    pub(crate) fn libc_path() -> PathBuf {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
            .map(Into::into)
            .expect("libc is mapped")
    }

    #[test]
    fn the_running_libc_passes() {
        let info = check_shared_library(&libc_path()).unwrap();
        assert_eq!(u32::from(info.bits), usize::BITS);
        assert_eq!(Some(info.machine), host_machine());
        assert!(info.load_segments >= 2, "{info:?}");
    }

    #[test]
    fn truncated_copies_are_refused_at_every_cut() {
        let libc = std::fs::read(libc_path()).unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("libc-cut.so");
        // The header alone, the middle of the segments, and one byte short.
        for cut in [64, 4096, libc.len() / 2, libc.len() - 1] {
            std::fs::write(&p, &libc[..cut]).unwrap();
            let e = check_shared_library(&p).unwrap_err();
            assert!(matches!(e, ElfError::Truncated { .. }), "cut at {cut}: {e:?}");
            let text = e.to_string();
            assert!(text.contains(&p.display().to_string()) && text.contains("truncated"), "{text}");
            assert!(text.contains(&format!("only {cut} bytes")), "{text}");
        }
    }

    #[test]
    fn non_libraries_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let junk = d.path().join("junk.so");
        std::fs::write(&junk, b"not an elf file").unwrap();
        assert!(matches!(check_shared_library(&junk), Err(ElfError::NotElf { size: 15, .. })));
        let empty = d.path().join("empty.so");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(check_shared_library(&empty), Err(ElfError::NotElf { size: 0, .. })));
        // This test binary is an executable (or a PIE, which is ET_DYN too): patch e_type of a
        // copy of libc to "executable" instead, and e_machine to a foreign one.
        let mut bytes = std::fs::read(libc_path()).unwrap();
        bytes[16..18].copy_from_slice(&2u16.to_ne_bytes());
        let exe = d.path().join("exe.so");
        std::fs::write(&exe, &bytes).unwrap();
        let e = check_shared_library(&exe).unwrap_err();
        assert!(e.to_string().contains("an elf executable, not a shared library"), "{e}");
        bytes[16..18].copy_from_slice(&ET_DYN.to_ne_bytes());
        let foreign: u16 = if host_machine() == Some(183) { 62 } else { 183 };
        bytes[18..20].copy_from_slice(&foreign.to_ne_bytes());
        std::fs::write(&exe, &bytes).unwrap();
        let e = check_shared_library(&exe).unwrap_err();
        assert!(matches!(e, ElfError::Foreign { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("is built for {}", machine_name(foreign))), "{e}");
        let e = check_shared_library(d.path()).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }
}
