//! One stream's side of a connection: the events its service thread receives, flow-controlled
//! output (one WRTE in flight, bounded output credit), and the metered, serialised socket writes
//! every stream shares. The services (`shell`, `sync`) and the connection loop (`conn`) both
//! depend on this module; it depends on neither.

use crate::Shared;
use crate::faults::{Budget, Meter};
use crate::message::{A_CLSE, A_OKAY, A_WRTE, Message};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Output bytes a shell may have queued but not yet sent before its readers wait.
pub(crate) const OUTPUT_CREDIT: usize = 1024 * 1024;

/// Socket state shared by the reader and the writer: the byte meter and the close flag.
pub(crate) struct ConnIo {
    pub(crate) shared: Arc<Shared>,
    pub(crate) meter: Meter,
    pub(crate) raw: TcpStream,
    pub(crate) closed: AtomicBool,
    /// Why we closed the socket ourselves (fault, offline, stop), for the disconnect event.
    pub(crate) reason: Mutex<Option<&'static str>>,
}

fn aborted(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, msg.to_string())
}

impl ConnIo {
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.raw.shutdown(Shutdown::Both);
    }

    /// Closes the socket, remembering the first reason, and returns the error to report.
    pub(crate) fn close_for(&self, why: &'static str) -> io::Error {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(why);
        self.close();
        aborted(why)
    }

    /// Did the host hang up? Peeks without consuming or blocking.
    pub(crate) fn peer_closed(&self) -> bool {
        let mut b = [0u8; 1];
        // SAFETY: valid fd owned by `raw`, valid 1-byte buffer.
        let n =
            unsafe { libc::recv(self.raw.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        n == 0
    }

    /// How many of `want` bytes may pass now; waits while stalled; errors when the connection
    /// must end (drop fault, offline, device stopping).
    pub(crate) fn allowance(&self, want: usize) -> io::Result<usize> {
        loop {
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Err(self.close_for("device stopping"));
            }
            if self.closed.load(Ordering::SeqCst) {
                return Err(aborted("connection closed"));
            }
            match self.meter.budget(&self.shared.faults) {
                Budget::Unlimited => return Ok(want),
                Budget::Bytes(n) => return Ok(want.min(usize::try_from(n).unwrap_or(usize::MAX))),
                Budget::Stalled => {
                    if self.peer_closed() {
                        return Err(self.close_for("host hung up during a stall fault"));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Budget::Dropped => {
                    return Err(self.close_for("connection dropped by the drop_after_bytes fault"));
                }
                Budget::Offline => return Err(self.close_for("device is offline")),
            }
        }
    }
}

/// Serialised, metered message writes.
pub(crate) struct Writer {
    pub(crate) sock: Mutex<TcpStream>,
    pub(crate) io: Arc<ConnIo>,
}

impl Writer {
    pub fn send(&self, m: &Message) -> io::Result<()> {
        let bytes = m.encode();
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let mut off = 0;
        while off < bytes.len() {
            let n = self.io.allowance(bytes.len() - off)?;
            if let Err(e) = sock.write_all(&bytes[off..off + n]) {
                self.io.close();
                return Err(e);
            }
            self.io.meter.add(n as u64);
            off += n;
        }
        Ok(())
    }
}

/// What a stream thread is told.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    /// Payload of a host WRTE; must be acknowledged with [`StreamCtx::ack`].
    Data(Vec<u8>),
    /// The host acknowledged our WRTE (already handled by [`StreamCtx::next_event`]).
    Okay,
    /// The host closed the stream or the connection ended.
    Close,
    /// Child output (`fd` 1 or 2), holding `data.len()` bytes of output credit.
    Output {
        fd: u8,
        data: Vec<u8>,
    },
    OutputEof,
    Exited(i32),
    /// The stdin writer finished one chunk.
    StdinDone,
}

/// Bounds output produced by helper threads: bytes taken here are returned once sent.
pub(crate) struct Credit {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
    limit: usize,
}

impl Credit {
    fn new(limit: usize) -> Credit {
        Credit { state: Mutex::new((0, false)), cv: Condvar::new(), limit }
    }

    /// Waits until fewer than `limit` bytes are outstanding, then takes `n`. False once closed.
    pub fn acquire(&self, n: usize) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while g.0 >= self.limit && !g.1 {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        if g.1 {
            return false;
        }
        g.0 += n;
        true
    }

    fn release(&self, n: usize) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = g.0.saturating_sub(n);
        self.cv.notify_all();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.cv.notify_all();
    }
}

/// A service's view of its stream: events in, flow-controlled output out.
pub(crate) struct StreamCtx {
    pub local: u32,
    pub remote: u32,
    pub shared: Arc<Shared>,
    pub credit: Arc<Credit>,
    writer: Arc<Writer>,
    tx: SyncSender<StreamEvent>,
    rx: Receiver<StreamEvent>,
    max_payload: usize,
    /// Queued output chunks and the credit each returns once fully sent.
    outbox: VecDeque<(Vec<u8>, usize)>,
    front_off: usize,
    pending: usize,
    in_flight: bool,
    host_closed: bool,
}

impl StreamCtx {
    /// The context of a newly opened stream.
    pub(crate) fn new(
        (local, remote): (u32, u32),
        shared: Arc<Shared>,
        writer: Arc<Writer>,
        (tx, rx): (SyncSender<StreamEvent>, Receiver<StreamEvent>),
        max_payload: usize,
    ) -> StreamCtx {
        StreamCtx {
            local,
            remote,
            shared,
            credit: Arc::new(Credit::new(OUTPUT_CREDIT)),
            writer,
            tx,
            rx,
            max_payload,
            outbox: VecDeque::new(),
            front_off: 0,
            pending: 0,
            in_flight: false,
            host_closed: false,
        }
    }

    /// A sender for helper threads (shell readers, waiter, stdin writer).
    pub fn sender(&self) -> SyncSender<StreamEvent> {
        self.tx.clone()
    }

    /// Output bytes queued but not yet sent.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Next event; OKAY is applied to the outbox before it is returned.
    pub fn next_event(&mut self) -> io::Result<StreamEvent> {
        // Cannot disconnect while we hold `tx`, but be defensive.
        let ev = self.rx.recv().unwrap_or(StreamEvent::Close);
        match ev {
            StreamEvent::Okay => {
                self.in_flight = false;
                self.pump()?;
            }
            StreamEvent::Close => self.host_closed = true,
            _ => {}
        }
        Ok(ev)
    }

    /// Queues output; `credit` bytes of [`StreamCtx::credit`] are released once it is sent.
    pub fn queue(&mut self, data: Vec<u8>, credit: usize) -> io::Result<()> {
        if data.is_empty() {
            self.credit.release(credit);
            return Ok(());
        }
        self.pending += data.len();
        self.outbox.push_back((data, credit));
        self.pump()
    }

    fn pump(&mut self) -> io::Result<()> {
        if self.in_flight || self.pending == 0 || self.host_closed {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(self.pending.min(self.max_payload));
        while buf.len() < self.max_payload {
            let Some((front, credit)) = self.outbox.front() else {
                break;
            };
            let take = (front.len() - self.front_off).min(self.max_payload - buf.len());
            buf.extend_from_slice(&front[self.front_off..self.front_off + take]);
            self.front_off += take;
            if self.front_off == front.len() {
                self.credit.release(*credit);
                self.outbox.pop_front();
                self.front_off = 0;
            }
        }
        self.pending -= buf.len();
        self.in_flight = true;
        self.writer.send(&Message::new(A_WRTE, self.local, self.remote, buf))
    }

    /// Acknowledges one host WRTE (lets the host send the next).
    pub fn ack(&self) -> io::Result<()> {
        self.writer.send(&Message::new(A_OKAY, self.local, self.remote, vec![]))
    }

    /// Sends everything queued, then CLSE (unless the host closed first).
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        while !self.host_closed && (self.pending > 0 || self.in_flight) {
            if let StreamEvent::Data(_) = self.next_event()? {
                self.ack()?;
            }
        }
        if !self.host_closed {
            self.writer.send(&Message::new(A_CLSE, self.local, self.remote, vec![]))?;
        }
        Ok(())
    }
}

impl Drop for StreamCtx {
    fn drop(&mut self) {
        self.credit.close();
    }
}

/// Why a stream ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    #[error("connection i/o: {0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
}
