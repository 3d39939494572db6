//! One host connection: the CNXN handshake (with AUTH unless insecure), the stream table, routing of OKAY/WRTE/CLSE to the
//! per-stream threads, and the metered socket I/O through which every fault is applied.
//!
//! Threads: the connection thread reads messages and never blocks on a service; each stream runs
//! its service on its own thread, fed by a bounded channel of [`StreamEvent`]s; all writes go
//! through one [`Writer`] (a mutex around the socket) so messages never interleave. Each stream
//! keeps at most one WRTE in flight and acknowledges host WRTEs only once it has consumed them,
//! which keeps every buffer bounded by about one payload per stream.

use crate::auth::{self, AUTH_RSAPUBLICKEY, AUTH_SIGNATURE, AUTH_TOKEN, TOKEN_LEN};
use crate::faults::Meter;
use crate::message::{
    self, A_AUTH, A_CLSE, A_CNXN, A_OKAY, A_OPEN, A_STLS, A_SYNC, A_VERSION, A_VERSION_MIN, A_WRTE, MAX_PAYLOAD,
    MAX_PAYLOAD_V1, Message, MessageError,
};
use crate::shell::{self, ShellSpec};
use crate::stream::{ConnIo, StreamCtx, StreamEvent, Writer};
use crate::{Event, Shared, sync};
use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most streams one connection may have open at once.
const MAX_STREAMS: usize = 256;
/// Events queued per stream before the connection thread waits.
const EVENT_QUEUE: usize = 64;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("reading a message: {0}")]
    Message(#[from] MessageError),
    #[error("writing to the host: {0}")]
    Write(io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("{0}")]
    Fault(String),
}

/// Reads the socket through the meter.
struct MeteredReader {
    sock: TcpStream,
    io: Arc<ConnIo>,
}

impl Read for MeteredReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.io.allowance(buf.len())?;
        let got = self.sock.read(&mut buf[..n])?;
        self.io.meter.add(got as u64);
        Ok(got)
    }
}

struct StreamHandle {
    remote: u32,
    tx: SyncSender<StreamEvent>,
}

type StreamTable = Arc<Mutex<HashMap<u32, StreamHandle>>>;

enum Service {
    Sync,
    Shell(ShellSpec),
}

fn parse_service(s: &[u8]) -> Option<Service> {
    if s == b"sync:" {
        return Some(Service::Sync);
    }
    ShellSpec::parse(s).map(Service::Shell)
}

/// Serves one accepted connection until it ends.
pub(crate) fn serve(shared: Arc<Shared>, sock: TcpStream) -> Result<(), ConnError> {
    let setup = |e| ConnError::Write(e);
    sock.set_nodelay(true).map_err(setup)?;
    // A host that stops reading must not pin our threads forever.
    sock.set_write_timeout(Some(Duration::from_secs(60))).map_err(setup)?;
    let peer = sock.peer_addr().map_err(setup)?;
    let epoch = shared.faults.snapshot().1;
    let io = Arc::new(ConnIo {
        shared: shared.clone(),
        meter: Meter::new(epoch),
        raw: sock.try_clone().map_err(setup)?,
        closed: AtomicBool::new(false),
        reason: Mutex::new(None),
    });
    let writer = Arc::new(Writer { sock: Mutex::new(sock.try_clone().map_err(setup)?), io: io.clone() });
    let mut reader = BufReader::with_capacity(64 * 1024, MeteredReader { sock, io: io.clone() });
    let streams: StreamTable = Arc::new(Mutex::new(HashMap::new()));
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut result = message_loop(&shared, peer, &mut reader, &writer, &streams, &mut threads);
    if let Some(why) = *io.reason.lock().unwrap_or_else(|p| p.into_inner()) {
        result = Err(ConnError::Fault(why.to_string()));
    }
    io.close();
    let handles: Vec<StreamHandle> =
        streams.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, h)| h).collect();
    for h in handles {
        let _ = h.tx.send(StreamEvent::Close);
    }
    for t in threads {
        let _ = t.join();
    }
    result
}

fn message_loop(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    reader: &mut impl Read,
    writer: &Arc<Writer>,
    streams: &StreamTable,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<(), ConnError> {
    let mut max_payload: Option<usize> = None;
    let mut next_id: u32 = 1;
    let mut auth = AuthState { authorized: shared.keys.is_none(), cnxn: None, token: None };
    loop {
        let m = match Message::read_from(reader, MAX_PAYLOAD) {
            Ok(m) => m,
            Err(MessageError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match m.command {
            A_CNXN => {
                if m.arg0 < A_VERSION_MIN {
                    return Err(ConnError::Protocol(format!("host version {:#x} too old", m.arg0)));
                }
                let mp = if m.arg1 == 0 { MAX_PAYLOAD_V1 } else { m.arg1.min(MAX_PAYLOAD) };
                let params = (m.arg0.min(A_VERSION), mp);
                if auth.authorized {
                    online(writer, shared, params, &mut max_payload)?;
                } else {
                    // As adbd with auth required: challenge first, CNXN only after a good signature.
                    auth.cnxn = Some(params);
                    auth.challenge(writer)?;
                }
            }
            A_AUTH if !auth.authorized => {
                let Some(params) = auth.cnxn else {
                    return Err(ConnError::Protocol("AUTH before CNXN".into()));
                };
                match m.arg0 {
                    AUTH_SIGNATURE => {
                        let keys = shared.keys.as_ref().expect("unauthorized implies keys");
                        let matched = auth.token.and_then(|t| keys.verify(&t, &m.payload));
                        match matched {
                            Some(k) => {
                                auth.authorized = true;
                                auth.token = None;
                                shared.log(Event::Authorized { peer, key: k.comment.clone() });
                                online(writer, shared, params, &mut max_payload)?;
                            }
                            None => {
                                shared.log(Event::AuthFailed { peer });
                                auth.challenge(writer)?;
                            }
                        }
                    }
                    AUTH_RSAPUBLICKEY => {
                        // A phone would show the "allow USB debugging?" prompt and wait; the
                        // loopback device never accepts a key it was not given, and keeps the
                        // connection so the host shows the device `unauthorized`.
                        let offered = String::from_utf8_lossy(message::trim_nuls(&m.payload));
                        let key = offered.split_once(' ').map_or("", |(_, c)| c).trim().to_string();
                        shared.log(Event::AuthRefused { peer, key });
                    }
                    _ => {}
                }
            }
            A_STLS => {
                return Err(ConnError::Protocol("host asked for tls, which is not supported".into()));
            }
            cmd if max_payload.is_none() && cmd != A_AUTH && cmd != A_SYNC => {
                let why = if auth.cnxn.is_some() { "the host is not authorized" } else { "expected CNXN first" };
                return Err(ConnError::Protocol(format!("{why}, got {}", message::command_name(cmd))));
            }
            A_OPEN => {
                let mp = max_payload.unwrap_or(MAX_PAYLOAD_V1 as usize);
                if m.arg0 == 0 {
                    return Err(ConnError::Protocol("OPEN with host id 0".into()));
                }
                let name = message::trim_nuls(&m.payload);
                let service = String::from_utf8_lossy(name).into_owned();
                let full = streams.lock().unwrap_or_else(|p| p.into_inner()).len() >= MAX_STREAMS;
                let parsed = if full { None } else { parse_service(name) };
                let Some(svc) = parsed else {
                    shared.log(Event::StreamRejected { peer, service });
                    writer.send(&Message::new(A_CLSE, 0, m.arg0, vec![])).map_err(ConnError::Write)?;
                    continue;
                };
                let local = next_id;
                next_id = next_id.checked_add(1).unwrap_or(1);
                let (tx, rx) = sync_channel(EVENT_QUEUE);
                streams
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(local, StreamHandle { remote: m.arg0, tx: tx.clone() });
                writer.send(&Message::new(A_OKAY, local, m.arg0, vec![])).map_err(ConnError::Write)?;
                shared.log(Event::StreamOpened { peer, service: service.clone() });
                let ctx = StreamCtx::new((local, m.arg0), shared.clone(), writer.clone(), (tx, rx), mp);
                let table = streams.clone();
                let sh = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("qb-loopback-stream-{local}"))
                    .spawn(move || run_stream(sh, peer, ctx, svc, service, table));
                threads.retain(|t| !t.is_finished());
                match spawned {
                    Ok(t) => threads.push(t),
                    Err(_) => {
                        streams.lock().unwrap_or_else(|p| p.into_inner()).remove(&local);
                        writer.send(&Message::new(A_CLSE, local, m.arg0, vec![])).map_err(ConnError::Write)?;
                    }
                }
            }
            A_WRTE | A_OKAY | A_CLSE => {
                let mut table = streams.lock().unwrap_or_else(|p| p.into_inner());
                // Messages for unknown ids (late OKAYs, CLSE echoes) are ignored.
                let matches = table.get(&m.arg1).is_some_and(|h| h.remote == m.arg0 || m.arg0 == 0);
                if !matches {
                    continue;
                }
                let ev = match m.command {
                    A_WRTE => StreamEvent::Data(m.payload),
                    A_OKAY => StreamEvent::Okay,
                    _ => StreamEvent::Close,
                };
                let tx = if m.command == A_CLSE {
                    table.remove(&m.arg1).map(|h| h.tx)
                } else {
                    table.get(&m.arg1).map(|h| h.tx.clone())
                };
                drop(table);
                if let Some(tx) = tx {
                    // The stream thread may have finished already; that is fine.
                    let _ = tx.send(ev);
                }
            }
            // AUTH from a host we never challenged, obsolete SYNC, unknown commands: ignore.
            _ => {}
        }
    }
}

/// Where a connection stands with AUTH.
struct AuthState {
    authorized: bool,
    /// (version, max payload) of the host's CNXN, answered once it is authorized.
    cnxn: Option<(u32, u32)>,
    /// The token the host must sign now.
    token: Option<[u8; TOKEN_LEN]>,
}

impl AuthState {
    /// Sends a fresh token (a new one for every attempt, as adbd does).
    fn challenge(&mut self, writer: &Writer) -> Result<(), ConnError> {
        let t = auth::new_token().map_err(|e| ConnError::Protocol(format!("no random token: {e}")))?;
        self.token = Some(t);
        writer.send(&Message::new(A_AUTH, AUTH_TOKEN, 0, t.to_vec())).map_err(ConnError::Write)
    }
}

/// Sends our CNXN: the connection is online.
fn online(
    writer: &Writer,
    shared: &Shared,
    (version, mp): (u32, u32),
    max_payload: &mut Option<usize>,
) -> Result<(), ConnError> {
    writer.send(&Message::new(A_CNXN, version, mp, shared.banner.clone())).map_err(ConnError::Write)?;
    *max_payload = Some(mp as usize);
    Ok(())
}

fn run_stream(
    shared: Arc<Shared>,
    peer: SocketAddr,
    mut ctx: StreamCtx,
    svc: Service,
    service: String,
    table: StreamTable,
) {
    let result = match svc {
        Service::Sync => sync::run(&mut ctx),
        Service::Shell(spec) => shell::run(&mut ctx, spec),
    };
    let result = result.and_then(|()| ctx.finish().map_err(Into::into));
    table.lock().unwrap_or_else(|p| p.into_inner()).remove(&ctx.local);
    if let Err(e) = result {
        shared.log(Event::StreamError { peer, service, error: e.to_string() });
    }
}
