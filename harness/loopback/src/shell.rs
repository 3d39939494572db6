//! The shell services: `shell:` (v1: stdout+stderr merged into WRTE data, no exit code),
//! `shell,v2,...:` (packets with separate stdout/stderr, stdin, close-stdin and an exit packet)
//! and `exec:` (raw, merged, no protocol).
//!
//! A command runs as `/bin/sh -c CMD` (an empty command runs `/bin/sh` on its stdin) confined to
//! the device root, which it sees as `/`, in its own session (see `sandbox.rs`), with cwd `/`.
//! There is no PTY: `pty` requests get pipes. Output is forwarded as it is produced, so
//! heartbeats reach the host live; if the host closes the stream, the command's whole process
//! group is killed. `getprop` and `getprop NAME` are answered from the configured props without
//! running a shell.

use crate::sandbox::{Spawned, kill_pid_group};
use crate::stream::{StreamCtx, StreamError, StreamEvent};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::mpsc;

/// v2 packet ids.
pub const ID_STDIN: u8 = 0;
pub const ID_STDOUT: u8 = 1;
pub const ID_STDERR: u8 = 2;
pub const ID_EXIT: u8 = 3;
pub const ID_CLOSE_STDIN: u8 = 4;
pub const ID_WINDOW_SIZE: u8 = 5;

/// Exit code reported when the shell cannot be started (as adbd).
const EXIT_SPAWN_FAILED: u8 = 126;
/// Largest v2 packet we accept from the host.
const MAX_PACKET: usize = 1024 * 1024;

/// A parsed shell service request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShellSpec {
    /// Shell protocol v2 (separate streams, exit code).
    pub v2: bool,
    pub command: Vec<u8>,
}

impl ShellSpec {
    /// `shell[,arg...]:CMD` (args end at the first `:`) or `exec:CMD`.
    pub fn parse(s: &[u8]) -> Option<ShellSpec> {
        if let Some(cmd) = s.strip_prefix(b"exec:") {
            return Some(ShellSpec { v2: false, command: cmd.to_vec() });
        }
        let rest = s.strip_prefix(b"shell")?;
        let colon = rest.iter().position(|&b| b == b':')?;
        let (args, cmd) = (&rest[..colon], &rest[colon + 1..]);
        if !(args.is_empty() || args.starts_with(b",")) {
            return None;
        }
        let v2 = args.split(|&b| b == b',').any(|a| a == b"v2");
        Some(ShellSpec { v2, command: cmd.to_vec() })
    }
}

/// v2 packet `[id][len u32 LE][data]`.
pub fn packet(id: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + data.len());
    v.push(id);
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// The answer to `getprop` / `getprop NAME`, or None when the command is something else.
pub fn getprop_answer(cmd: &[u8], props: &BTreeMap<String, String>) -> Option<Vec<u8>> {
    let words: Vec<&[u8]> = cmd.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).collect();
    match words.as_slice() {
        [w] if *w == b"getprop" => {
            Some(props.iter().map(|(k, v)| format!("[{k}]: [{v}]\n")).collect::<String>().into_bytes())
        }
        [w, name] if *w == b"getprop" => {
            let name = std::str::from_utf8(name).ok()?;
            Some(format!("{}\n", props.get(name).map(String::as_str).unwrap_or("")).into_bytes())
        }
        _ => None,
    }
}

/// Output sink honouring the protocol: v2 packets or raw bytes.
fn emit(ctx: &mut StreamCtx, v2: bool, fd: u8, data: Vec<u8>, credit: usize) -> std::io::Result<()> {
    if v2 { ctx.queue(packet(fd, &data), credit) } else { ctx.queue(data, credit) }
}

/// Runs the shell service until the command finished and its output is queued, or the host
/// closes the stream.
pub(crate) fn run(ctx: &mut StreamCtx, spec: ShellSpec) -> Result<(), StreamError> {
    if let Some(out) = getprop_answer(&spec.command, &ctx.shared.props) {
        emit(ctx, spec.v2, ID_STDOUT, out, 0)?;
        if spec.v2 {
            ctx.queue(packet(ID_EXIT, &[0]), 0)?;
        }
        return Ok(());
    }
    // v1/exec: one pipe for both stdout and stderr, so the host sees them interleaved as written.
    let (merged_reader, merged_writers) = if spec.v2 {
        (None, None)
    } else {
        let (r, w) = std::io::pipe()?;
        let w2 = w.try_clone()?;
        (Some(r), Some((w, w2)))
    };
    // The Command, and with it our copies of the pipes' write ends, is dropped inside spawn, so
    // the readers see EOF when the command's side closes.
    let spawned = ctx.shared.sandbox.spawn(&spec.command, move |cmd| {
        cmd.stdin(Stdio::piped());
        match merged_writers {
            Some((w, w2)) => cmd.stdout(w).stderr(w2),
            None => cmd.stdout(Stdio::piped()).stderr(Stdio::piped()),
        };
    });
    let Spawned { mut child, group } = match spawned {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("loopback sandbox: cannot start /bin/sh: {e}\n").into_bytes();
            emit(ctx, spec.v2, ID_STDERR, msg, 0)?;
            if spec.v2 {
                ctx.queue(packet(ID_EXIT, &[EXIT_SPAWN_FAILED]), 0)?;
            }
            return Ok(());
        }
    };
    let pid = child.id();
    let mut readers: Vec<(u8, Box<dyn Read + Send>)> = Vec::new();
    if let Some(r) = merged_reader {
        readers.push((ID_STDOUT, Box::new(r)));
    }
    if let Some(o) = child.stdout.take() {
        readers.push((ID_STDOUT, Box::new(o)));
    }
    if let Some(e) = child.stderr.take() {
        readers.push((ID_STDERR, Box::new(e)));
    }
    let mut open_outputs = readers.len();
    for (fd, mut r) in readers {
        let tx = ctx.sender();
        let credit = ctx.credit.clone();
        spawn_helper("out", move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if !credit.acquire(n) || tx.send(StreamEvent::Output { fd, data: buf[..n].to_vec() }).is_err() {
                    return;
                }
            }
            let _ = tx.send(StreamEvent::OutputEof);
        });
    }
    // Stdin writer: a separate thread so a child that does not read cannot block us.
    let (stdin_tx, stdin_rx) = mpsc::channel::<Option<Vec<u8>>>();
    let mut stdin = child.stdin.take();
    let tx = ctx.sender();
    spawn_helper("stdin", move || {
        while let Ok(Some(data)) = stdin_rx.recv() {
            if let Some(s) = &mut stdin
                && s.write_all(&data).is_err()
            {
                stdin = None;
            }
            if tx.send(StreamEvent::StdinDone).is_err() {
                return;
            }
        }
    });
    let tx = ctx.sender();
    spawn_helper("wait", move || {
        let code = match child.wait() {
            Ok(st) => st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
            Err(_) => 255,
        };
        let _ = tx.send(StreamEvent::Exited(code));
    });

    let mut stdin_open = true;
    let mut outstanding = 0usize;
    let mut ack_pending = false;
    let mut inbuf: Vec<u8> = Vec::new();
    let mut exit: Option<i32> = None;
    let result: Result<(), StreamError> = loop {
        if open_outputs == 0 && exit.is_some() {
            break Ok(());
        }
        let ev = match ctx.next_event() {
            Ok(ev) => ev,
            Err(e) => break Err(e.into()),
        };
        let step: Result<(), StreamError> = match ev {
            StreamEvent::Output { fd, data } => {
                let n = data.len();
                emit(ctx, spec.v2, fd, data, n).map_err(Into::into)
            }
            StreamEvent::OutputEof => {
                open_outputs -= 1;
                Ok(())
            }
            StreamEvent::Exited(c) => {
                exit = Some(c);
                Ok(())
            }
            StreamEvent::StdinDone => {
                outstanding = outstanding.saturating_sub(1);
                if outstanding == 0 && ack_pending {
                    ack_pending = false;
                    ctx.ack().map_err(Into::into)
                } else {
                    Ok(())
                }
            }
            StreamEvent::Data(d) => {
                let mut chunks = Vec::new();
                let parsed = if spec.v2 {
                    inbuf.extend_from_slice(&d);
                    parse_stdin_packets(&mut inbuf, &mut chunks, &mut stdin_open)
                } else {
                    chunks.push(d);
                    Ok(())
                };
                for c in chunks.into_iter().filter(|c| !c.is_empty()) {
                    if stdin_tx.send(Some(c)).is_ok() {
                        outstanding += 1;
                    }
                }
                if !stdin_open {
                    let _ = stdin_tx.send(None);
                }
                match parsed {
                    Err(e) => Err(e),
                    Ok(()) if outstanding == 0 => ctx.ack().map_err(Into::into),
                    Ok(()) => {
                        ack_pending = true;
                        Ok(())
                    }
                }
            }
            StreamEvent::Close => {
                kill_pid_group(group, pid);
                return Ok(());
            }
            StreamEvent::Okay => Ok(()),
        };
        if let Err(e) = step {
            break Err(e);
        }
    };
    let _ = stdin_tx.send(None);
    match result {
        Ok(()) => {
            if spec.v2 {
                let code = exit.unwrap_or(255);
                ctx.queue(packet(ID_EXIT, &[(code & 0xff) as u8]), 0)?;
            }
            Ok(())
        }
        Err(e) => {
            kill_pid_group(group, pid);
            Err(e)
        }
    }
}

/// Takes complete v2 packets from `inbuf`: stdin data goes to `chunks`, close-stdin clears
/// `stdin_open`, window-size and unknown ids are ignored.
fn parse_stdin_packets(
    inbuf: &mut Vec<u8>,
    chunks: &mut Vec<Vec<u8>>,
    stdin_open: &mut bool,
) -> Result<(), StreamError> {
    let mut pos = 0;
    while inbuf.len() - pos >= 5 {
        let id = inbuf[pos];
        let len = u32::from_le_bytes(inbuf[pos + 1..pos + 5].try_into().unwrap()) as usize;
        if len > MAX_PACKET {
            return Err(StreamError::Protocol(format!("shell packet of {len} bytes is too large")));
        }
        if inbuf.len() - pos < 5 + len {
            break;
        }
        let data = &inbuf[pos + 5..pos + 5 + len];
        match id {
            ID_STDIN if *stdin_open => chunks.push(data.to_vec()),
            ID_CLOSE_STDIN => *stdin_open = false,
            ID_WINDOW_SIZE => {}
            _ => {}
        }
        pos += 5 + len;
    }
    inbuf.drain(..pos);
    Ok(())
}

fn spawn_helper(what: &str, f: impl FnOnce() + Send + 'static) {
    // If the thread cannot be spawned the stream will wait for an event that never comes; the
    // host's CLSE still ends it (and kills the child).
    let _ = std::thread::Builder::new().name(format!("qb-loopback-{what}")).spawn(f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_strings() {
        assert_eq!(ShellSpec::parse(b"shell:ls -l"), Some(ShellSpec { v2: false, command: b"ls -l".to_vec() }));
        assert_eq!(
            ShellSpec::parse(b"shell,v2,TERM=xterm,raw:echo a:b"),
            Some(ShellSpec { v2: true, command: b"echo a:b".to_vec() })
        );
        assert_eq!(ShellSpec::parse(b"shell,v2,pty:"), Some(ShellSpec { v2: true, command: vec![] }));
        assert_eq!(ShellSpec::parse(b"exec:cat x"), Some(ShellSpec { v2: false, command: b"cat x".to_vec() }));
        assert_eq!(ShellSpec::parse(b"shellx:ls"), None);
        assert_eq!(ShellSpec::parse(b"shell"), None);
        assert_eq!(ShellSpec::parse(b"reboot:"), None);
    }

    #[test]
    fn getprop_is_intercepted_only_when_exact() {
        let props: BTreeMap<String, String> = [("ro.a".to_string(), "x".to_string())].into();
        assert_eq!(getprop_answer(b" getprop ro.a ", &props), Some(b"x\n".to_vec()));
        assert_eq!(getprop_answer(b"getprop ro.missing", &props), Some(b"\n".to_vec()));
        assert_eq!(getprop_answer(b"getprop", &props), Some(b"[ro.a]: [x]\n".to_vec()));
        assert_eq!(getprop_answer(b"getprop ro.a; id", &props), None);
        assert_eq!(getprop_answer(b"getprop a b", &props), None);
    }

    #[test]
    fn stdin_packets_split_across_writes() {
        let mut wire = packet(ID_STDIN, b"hello");
        wire.extend(packet(ID_WINDOW_SIZE, b"24x80"));
        wire.extend(packet(ID_CLOSE_STDIN, b""));
        let (mut inbuf, mut chunks, mut open) = (Vec::new(), Vec::new(), true);
        inbuf.extend_from_slice(&wire[..7]);
        parse_stdin_packets(&mut inbuf, &mut chunks, &mut open).unwrap();
        assert!(chunks.is_empty());
        inbuf.extend_from_slice(&wire[7..]);
        parse_stdin_packets(&mut inbuf, &mut chunks, &mut open).unwrap();
        assert_eq!(chunks, vec![b"hello".to_vec()]);
        assert!(!open);
        assert!(inbuf.is_empty());
        let mut big = vec![ID_STDIN];
        big.extend_from_slice(&(u32::MAX).to_le_bytes());
        assert!(parse_stdin_packets(&mut big, &mut chunks, &mut true).is_err());
    }
}
