//! The `sync:` service: STAT, STA2, LST2, LIST, LIS2, SEND (v1 `path,mode`), RECV and QUIT, as a
//! state machine over the stream's byte stream (requests may be split across WRTEs or packed
//! into one).
//!
//! Paths are device paths resolved inside the root as in a chroot (see [`crate::paths`]).
//! SEND failures are reported when DONE arrives (DATA is drained until then, as adbd does);
//! requests with a malformed header get FAIL and end the stream. The stat requests have no FAIL
//! in their protocol, so errors there answer "not found" (STAT: all zeros) or the errno
//! (STA2/LST2).

use crate::Shared;
use crate::faults::corrupt_file;
use crate::paths::{DeviceFs, NewFile};
use crate::stream::{StreamCtx, StreamError, StreamEvent};
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, UNIX_EPOCH};

/// Longest path a request may carry.
pub const MAX_PATH: usize = 1024;
/// Largest DATA chunk in either direction.
pub const MAX_DATA: usize = 64 * 1024;
/// RECV reads ahead only while less than this is queued.
const RECV_LOW_WATER: usize = 256 * 1024;

const fn id(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}
pub const ID_STAT: u32 = id(b"STAT");
pub const ID_STA2: u32 = id(b"STA2");
pub const ID_LST2: u32 = id(b"LST2");
pub const ID_LIST: u32 = id(b"LIST");
pub const ID_LIS2: u32 = id(b"LIS2");
pub const ID_DENT: u32 = id(b"DENT");
pub const ID_DNT2: u32 = id(b"DNT2");
pub const ID_SEND: u32 = id(b"SEND");
pub const ID_RECV: u32 = id(b"RECV");
pub const ID_DATA: u32 = id(b"DATA");
pub const ID_DONE: u32 = id(b"DONE");
pub const ID_OKAY: u32 = id(b"OKAY");
pub const ID_FAIL: u32 = id(b"FAIL");
pub const ID_QUIT: u32 = id(b"QUIT");

/// Size of a v1 directory entry (`DENT`) and of the padded v1 `DONE`.
pub const DENT_V1_LEN: usize = 20;
/// Size of a v2 directory entry (`DNT2`) and of the padded v2 `DONE`.
pub const DENT_V2_LEN: usize = 76;
/// Size of a STA2/LST2 reply.
pub const STAT_V2_LEN: usize = 72;

/// `{id, len}` + body.
pub fn frame(id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + body.len());
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&(body.len() as u32).to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// The `DONE` that ends a listing, padded with zeros to the full entry size.
pub fn done_padded(entry_len: usize) -> Vec<u8> {
    let mut v = vec![0u8; entry_len];
    v[..4].copy_from_slice(&ID_DONE.to_le_bytes());
    v
}

/// Parses a SEND mode like C's `strtoul(s, 0)`: `0x` hex, leading `0` octal, else decimal.
pub fn parse_mode(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// The 72-byte stat v2 body (without the id) for `md`, or zeros with `errno`.
fn stat_v2(md: Result<&Metadata, i32>) -> Vec<u8> {
    let mut v = Vec::with_capacity(STAT_V2_LEN);
    match md {
        Ok(m) => {
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&m.dev().to_le_bytes());
            v.extend_from_slice(&m.ino().to_le_bytes());
            v.extend_from_slice(&m.mode().to_le_bytes());
            v.extend_from_slice(&(m.nlink() as u32).to_le_bytes());
            v.extend_from_slice(&m.uid().to_le_bytes());
            v.extend_from_slice(&m.gid().to_le_bytes());
            v.extend_from_slice(&m.size().to_le_bytes());
            v.extend_from_slice(&m.atime().to_le_bytes());
            v.extend_from_slice(&m.mtime().to_le_bytes());
            v.extend_from_slice(&m.ctime().to_le_bytes());
        }
        Err(errno) => {
            v.extend_from_slice(&(errno as u32).to_le_bytes());
            v.resize(STAT_V2_LEN - 4, 0);
        }
    }
    v
}

/// `{mode, size, mtime}` as u32s (v1 stat and DENT), zeros when missing.
fn stat_v1(md: Option<&Metadata>) -> [u8; 12] {
    let mut b = [0u8; 12];
    if let Some(m) = md {
        b[0..4].copy_from_slice(&m.mode().to_le_bytes());
        b[4..8].copy_from_slice(&(m.size() as u32).to_le_bytes());
        b[8..12].copy_from_slice(&(m.mtime() as u32).to_le_bytes());
    }
    b
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// An io error as adbd would word it (strerror text, without Rust's "(os error N)").
fn errmsg(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

enum State {
    Idle,
    Send(SendState),
    Recv(File),
}

struct SendState {
    file: Option<NewFile>,
    mode: u32,
    error: Option<String>,
    /// Bytes of the current DATA chunk still to come.
    remaining: usize,
}

struct Session {
    inbuf: Vec<u8>,
    pos: usize,
    state: State,
    ack_pending: bool,
}

enum Flow {
    /// Made progress; try again.
    Progress,
    /// Need more input (or the output must drain first).
    Wait,
    /// The stream is done (QUIT or a fatal request error).
    End,
}

/// Runs the sync service until QUIT, a fatal error or the host closing the stream.
pub(crate) fn run(ctx: &mut StreamCtx) -> Result<(), StreamError> {
    let mut s = Session { inbuf: Vec::new(), pos: 0, state: State::Idle, ack_pending: false };
    loop {
        match ctx.next_event()? {
            StreamEvent::Data(d) => {
                s.inbuf.extend_from_slice(&d);
                s.ack_pending = true;
            }
            StreamEvent::Close => {
                s.abort_send();
                return Ok(());
            }
            _ => {}
        }
        let mut flow = s.step(ctx)?;
        while let Flow::Progress = flow {
            flow = s.step(ctx)?;
        }
        s.inbuf.drain(..s.pos);
        s.pos = 0;
        if let Flow::End = flow {
            s.abort_send();
            return Ok(());
        }
        // While a RECV streams out we do not consume input, so we hold the host's next WRTE back.
        if s.ack_pending && !matches!(s.state, State::Recv(_)) {
            ctx.ack()?;
            s.ack_pending = false;
        }
    }
}

impl Session {
    fn avail(&self) -> &[u8] {
        &self.inbuf[self.pos..]
    }

    fn header(&self) -> Option<(u32, u32)> {
        let a = self.avail();
        (a.len() >= 8)
            .then(|| (u32::from_le_bytes(a[0..4].try_into().unwrap()), u32::from_le_bytes(a[4..8].try_into().unwrap())))
    }

    /// A SEND that never saw DONE leaves no partial file behind.
    fn abort_send(&mut self) {
        if let State::Send(st) = std::mem::replace(&mut self.state, State::Idle)
            && let Some(f) = &st.file
        {
            f.remove();
        }
    }

    fn fail(ctx: &mut StreamCtx, msg: &str) -> io::Result<()> {
        ctx.queue(frame(ID_FAIL, msg.as_bytes()), 0)
    }

    fn step(&mut self, ctx: &mut StreamCtx) -> Result<Flow, StreamError> {
        match &mut self.state {
            State::Recv(_) => self.recv_fill(ctx),
            State::Send(_) => self.send_step(ctx),
            State::Idle => self.request(ctx),
        }
    }

    fn request(&mut self, ctx: &mut StreamCtx) -> Result<Flow, StreamError> {
        let Some((rid, len)) = self.header() else {
            return Ok(Flow::Wait);
        };
        let len = len as usize;
        let known = [ID_STAT, ID_STA2, ID_LST2, ID_LIST, ID_LIS2, ID_SEND, ID_RECV];
        if rid == ID_QUIT {
            self.pos += 8;
            return Ok(Flow::End);
        }
        if !known.contains(&rid) {
            let name = String::from_utf8_lossy(&rid.to_le_bytes()).into_owned();
            Self::fail(ctx, &format!("unknown sync command {name:?}"))?;
            return Ok(Flow::End);
        }
        if len > MAX_PATH {
            Self::fail(ctx, "path too long")?;
            return Ok(Flow::End);
        }
        if self.avail().len() < 8 + len {
            return Ok(Flow::Wait);
        }
        let arg = self.avail()[8..8 + len].to_vec();
        self.pos += 8 + len;
        let fs = &ctx.shared.fs;
        match rid {
            ID_STAT => {
                let md = fs.lstat(&arg).ok();
                let mut v = ID_STAT.to_le_bytes().to_vec();
                v.extend_from_slice(&stat_v1(md.as_ref()));
                ctx.queue(v, 0)?;
            }
            ID_STA2 | ID_LST2 => {
                let md = if rid == ID_STA2 { fs.stat(&arg) } else { fs.lstat(&arg) };
                let mut v = rid.to_le_bytes().to_vec();
                v.extend_from_slice(&stat_v2(md.as_ref().map_err(errno)));
                ctx.queue(v, 0)?;
            }
            ID_LIST | ID_LIS2 => {
                let out = list(fs, &arg, rid == ID_LIS2);
                ctx.queue(out, 0)?;
            }
            ID_RECV => match fs.open_regular(&arg) {
                Err(e) => Self::fail(ctx, &errmsg(&e))?,
                Ok(f) => self.state = State::Recv(f),
            },
            _ => self.state = State::Send(start_send(&ctx.shared, &arg)),
        }
        Ok(Flow::Progress)
    }

    fn recv_fill(&mut self, ctx: &mut StreamCtx) -> Result<Flow, StreamError> {
        let State::Recv(file) = &mut self.state else {
            return Ok(Flow::Wait);
        };
        while ctx.pending() < RECV_LOW_WATER {
            let mut buf = vec![0u8; MAX_DATA];
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.state = State::Idle;
                    Self::fail(ctx, &format!("read failed: {}", errmsg(&e)))?;
                    return Ok(Flow::Progress);
                }
            };
            if n == 0 {
                self.state = State::Idle;
                ctx.queue(frame(ID_DONE, &[]), 0)?;
                return Ok(Flow::Progress);
            }
            buf.truncate(n);
            let mut v = Vec::with_capacity(8 + n);
            v.extend_from_slice(&ID_DATA.to_le_bytes());
            v.extend_from_slice(&(n as u32).to_le_bytes());
            v.extend_from_slice(&buf);
            ctx.queue(v, 0)?;
        }
        // Resume when OKAYs drain the outbox (every event re-enters `step`).
        Ok(Flow::Wait)
    }

    fn send_step(&mut self, ctx: &mut StreamCtx) -> Result<Flow, StreamError> {
        let State::Send(st) = &mut self.state else {
            return Ok(Flow::Wait);
        };
        if st.remaining > 0 {
            let a = &self.inbuf[self.pos..];
            if a.is_empty() {
                return Ok(Flow::Wait);
            }
            let n = a.len().min(st.remaining);
            if let (Some(f), None) = (&mut st.file, &st.error)
                && let Err(e) = f.file.write_all(&a[..n])
            {
                st.error = Some(format!("write failed: {}", errmsg(&e)));
            }
            st.remaining -= n;
            self.pos += n;
            return Ok(Flow::Progress);
        }
        let Some((cid, arg)) = self.header() else {
            return Ok(Flow::Wait);
        };
        self.pos += 8;
        if cid == ID_DATA {
            let State::Send(st) = &mut self.state else {
                return Ok(Flow::Wait);
            };
            if arg as usize > MAX_DATA {
                Self::fail(ctx, &format!("data chunk of {arg} bytes exceeds {MAX_DATA}"))?;
                return Ok(Flow::End);
            }
            st.remaining = arg as usize;
            return Ok(Flow::Progress);
        }
        if cid != ID_DONE {
            let name = String::from_utf8_lossy(&cid.to_le_bytes()).into_owned();
            Self::fail(ctx, &format!("unexpected {name:?} during SEND"))?;
            return Ok(Flow::End);
        }
        let State::Send(st) = std::mem::replace(&mut self.state, State::Idle) else { unreachable!() };
        match finish_send(ctx, st, arg) {
            Ok(()) => ctx.queue(frame(ID_OKAY, &[]), 0)?,
            Err(msg) => Self::fail(ctx, &msg)?,
        }
        Ok(Flow::Progress)
    }
}

/// Listing of a directory (`.` and `..` included, as adbd does; `..` of `/` is `/`, as in a
/// chroot), terminated by a padded DONE. A missing directory lists empty.
fn list(fs: &DeviceFs, dir: &[u8], v2: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut entry = |name: &[u8], md: Result<Metadata, io::Error>| {
        if v2 {
            out.extend_from_slice(&ID_DNT2.to_le_bytes());
            out.extend_from_slice(&stat_v2(md.as_ref().map_err(errno)));
        } else {
            out.extend_from_slice(&ID_DENT.to_le_bytes());
            out.extend_from_slice(&stat_v1(md.as_ref().ok()));
        }
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name);
    };
    if let Ok(entries) = fs.list(dir) {
        entry(b".", fs.stat(dir));
        let mut parent = dir.to_vec();
        parent.extend_from_slice(b"/..");
        entry(b"..", fs.stat(&parent));
        for (name, md) in entries {
            entry(&name, md);
        }
    }
    out.extend_from_slice(&done_padded(if v2 { DENT_V2_LEN } else { DENT_V1_LEN }));
    out
}

/// Opens the target of a SEND; on failure the state carries the error for DONE time.
fn start_send(shared: &Shared, spec: &[u8]) -> SendState {
    let mut st = SendState { file: None, mode: 0, error: None, remaining: 0 };
    let Some(comma) = spec.iter().rposition(|&b| b == b',') else {
        st.error = Some("missing , in ID_SEND".into());
        return st;
    };
    let Some(mode) = std::str::from_utf8(&spec[comma + 1..]).ok().and_then(parse_mode) else {
        st.error = Some("bad mode in ID_SEND".into());
        return st;
    };
    st.mode = mode;
    if mode & libc::S_IFMT == libc::S_IFLNK {
        st.error = Some("symlinks are not supported by the loopback device".into());
        return st;
    }
    match shared.fs.create(&spec[..comma]) {
        Ok(f) => st.file = Some(f),
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            st.error = Some(format!("{} is a directory", String::from_utf8_lossy(&spec[..comma])));
        }
        Err(e) => st.error = Some(format!("couldn't create file: {}", errmsg(&e))),
    }
    st
}

fn finish_send(ctx: &StreamCtx, st: SendState, mtime: u32) -> Result<(), String> {
    let SendState { file, mode, error, .. } = st;
    let result = (|| {
        if let Some(e) = error {
            return Err(e);
        }
        let nf = file.as_ref().ok_or_else(|| "no file".to_string())?;
        let f = &nf.file;
        let _ = f.set_modified(UNIX_EPOCH + Duration::from_secs(u64::from(mtime)));
        if mode & 0o777 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(|e| format!("chmod failed: {}", errmsg(&e)))?;
        }
        if ctx.shared.faults.snapshot().0.corrupt_push {
            corrupt_file(f).map_err(|e| format!("corrupt_push fault failed: {}", errmsg(&e)))?;
        }
        Ok(())
    })();
    if result.is_err()
        && let Some(f) = &file
    {
        f.remove();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_is_padded_to_entry_size() {
        let v1 = done_padded(DENT_V1_LEN);
        assert_eq!(v1.len(), 20);
        assert_eq!(&v1[..4], b"DONE");
        assert!(v1[4..].iter().all(|&b| b == 0));
        let v2 = done_padded(DENT_V2_LEN);
        assert_eq!(v2.len(), 76);
        assert_eq!(&v2[..4], b"DONE");
    }

    #[test]
    fn entry_layouts_have_protocol_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("f"), b"12345").unwrap();
        let fs = DeviceFs::open(&root).unwrap();
        for (v2, dent) in [(false, DENT_V1_LEN), (true, DENT_V2_LEN)] {
            let out = list(&fs, b"/", v2);
            // ".", "..", "f" then DONE
            let names = [1usize, 2, 1];
            assert_eq!(out.len(), names.iter().map(|n| dent + n).sum::<usize>() + dent);
            let first_id = &out[..4];
            assert_eq!(first_id, if v2 { b"DNT2" } else { b"DENT" });
        }
        let md = root.join("f").metadata().unwrap();
        let s = stat_v2(Ok(&md));
        assert_eq!(s.len() + 4, STAT_V2_LEN);
        // size field sits after error, dev, ino, mode, nlink, uid, gid
        assert_eq!(u64::from_le_bytes(s[36..44].try_into().unwrap()), 5);
        let e = stat_v2(Err(libc::ENOENT));
        assert_eq!(e.len() + 4, STAT_V2_LEN);
        assert_eq!(u32::from_le_bytes(e[0..4].try_into().unwrap()), libc::ENOENT as u32);
    }

    #[test]
    fn mode_parses_like_strtoul() {
        assert_eq!(parse_mode("33188"), Some(0o100644));
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("0x1a4"), Some(0o644));
        assert_eq!(parse_mode("0"), Some(0));
        assert_eq!(parse_mode("abc"), None);
    }

    #[test]
    fn frame_layout() {
        assert_eq!(frame(ID_FAIL, b"no"), b"FAIL\x02\x00\x00\x00no");
        assert_eq!(frame(ID_OKAY, b""), b"OKAY\x00\x00\x00\x00");
    }
}
