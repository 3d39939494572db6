//! Wire-level checks against a running loopback device over TCP, for the behaviour the real
//! client does not pin down: malformed input closes only that connection, every message we get
//! carries the byte-sum checksum, streams are byte streams (requests split across WRTEs), the
//! device keeps one WRTE in flight, and the AUTH exchange (tokens, signatures, refused keys).

use quadbench_loopback::auth::{self, AUTH_RSAPUBLICKEY, AUTH_SIGNATURE, AUTH_TOKEN, TOKEN_LEN};
use quadbench_loopback::message::{
    A_AUTH, A_CLSE, A_CNXN, A_OKAY, A_OPEN, A_VERSION, A_WRTE, HEADER_LEN, MAX_PAYLOAD, Message, checksum,
};
use quadbench_loopback::{Auth, LoopbackConfig, LoopbackDevice};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha1::Sha1;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn start(root: &std::path::Path, auth: Auth) -> LoopbackDevice {
    LoopbackDevice::start(LoopbackConfig::new(root, auth)).unwrap_or_else(|e| panic!("starting the device: {e}"))
}

/// An insecure device: these tests speak the wire protocol without keys.
fn device() -> (tempfile::TempDir, LoopbackDevice) {
    let root = tempfile::tempdir().unwrap();
    let dev = start(root.path(), Auth::Insecure);
    (root, dev)
}

fn connect(dev: &LoopbackDevice) -> TcpStream {
    let s = TcpStream::connect(dev.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads one message and checks the header invariants every device message must satisfy.
fn recv(s: &mut TcpStream) -> Message {
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).unwrap();
    let m = Message::read_from(&mut (&h[..]).chain(&mut *s), MAX_PAYLOAD).unwrap();
    let check = u32::from_le_bytes(h[16..20].try_into().unwrap());
    assert_eq!(check, checksum(&m.payload), "data_check must be the payload byte sum");
    m
}

fn send(s: &mut TcpStream, m: Message) {
    s.write_all(&m.encode()).unwrap();
}

/// True if the device closed the connection (EOF or reset) within the read timeout.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn handshake(s: &mut TcpStream, maxdata: u32) -> Message {
    send(s, Message::new(A_CNXN, A_VERSION, maxdata, b"host::features=shell_v2\0".to_vec()));
    let m = recv(s);
    assert_eq!(m.command, A_CNXN);
    m
}

#[test]
fn handshake_reply_negotiates_and_advertises_features() {
    let (_r, dev) = device();
    let mut s = connect(&dev);
    let m = handshake(&mut s, 0x0010_0000 * 4);
    assert_eq!(m.arg0, A_VERSION);
    assert_eq!(m.arg1, MAX_PAYLOAD, "max payload is capped at 1 MiB");
    let banner = String::from_utf8(m.payload).unwrap();
    assert!(banner.starts_with("device::"), "{banner}");
    assert!(banner.ends_with("features=shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir"), "{banner}");
    let mut s = connect(&dev);
    assert_eq!(handshake(&mut s, 4096).arg1, 4096);
}

#[test]
fn malformed_messages_close_only_that_connection() {
    let (_r, dev) = device();
    let mut bad_magic = Message::new(A_CNXN, A_VERSION, 4096, vec![]).encode();
    bad_magic[20] ^= 0xff;
    let mut oversize = Message::new(A_CNXN, A_VERSION, 4096, vec![]).encode();
    oversize[12..16].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
    let open_first = Message::new(A_OPEN, 1, 0, b"shell:true\0".to_vec()).encode();
    let garbage = vec![0x41u8; 100];
    for bytes in [bad_magic, oversize, open_first, garbage] {
        let mut s = connect(&dev);
        s.write_all(&bytes).unwrap();
        assert!(closed(&mut s), "device must hang up on {:?}", &bytes[..8]);
    }
    // A truncated message followed by a hang-up is not a problem either.
    let mut s = connect(&dev);
    s.write_all(&Message::new(A_CNXN, A_VERSION, 4096, b"host::".to_vec()).encode()[..30]).unwrap();
    drop(s);
    // The device still serves.
    let mut s = connect(&dev);
    handshake(&mut s, 4096);
    // Unknown service: CLSE(0, host id).
    send(&mut s, Message::new(A_OPEN, 9, 0, b"reboot:\0".to_vec()));
    let m = recv(&mut s);
    assert_eq!((m.command, m.arg0, m.arg1), (A_CLSE, 0, 9));
}

fn open(s: &mut TcpStream, host_id: u32, service: &str) -> u32 {
    send(s, Message::new(A_OPEN, host_id, 0, format!("{service}\0").into_bytes()));
    let m = recv(s);
    assert_eq!((m.command, m.arg1), (A_OKAY, host_id), "{m:?}");
    m.arg0
}

#[test]
fn sync_requests_split_across_writes() {
    let (_root, dev) = device();
    std::fs::write(dev.host_path("/data/local/tmp/f"), b"12345").unwrap();
    let mut s = connect(&dev);
    handshake(&mut s, 4096);
    let dev_id = open(&mut s, 5, "sync:");
    // Header in one WRTE, path in the next (as adb_client does).
    let path = b"/data/local/tmp/f";
    let mut hdr = b"STA2".to_vec();
    hdr.extend_from_slice(&(path.len() as u32).to_le_bytes());
    send(&mut s, Message::new(A_WRTE, 5, dev_id, hdr));
    let m = recv(&mut s);
    assert_eq!((m.command, m.arg0, m.arg1), (A_OKAY, dev_id, 5));
    send(&mut s, Message::new(A_WRTE, 5, dev_id, path.to_vec()));
    let mut got = Vec::new();
    while got.len() < 72 {
        let m = recv(&mut s);
        match m.command {
            A_OKAY => {}
            A_WRTE => {
                got.extend_from_slice(&m.payload);
                send(&mut s, Message::new(A_OKAY, 5, dev_id, vec![]));
            }
            other => panic!("unexpected {other:#x}"),
        }
    }
    assert_eq!(&got[..4], b"STA2");
    assert_eq!(u32::from_le_bytes(got[4..8].try_into().unwrap()), 0, "errno");
    assert_eq!(u64::from_le_bytes(got[40..48].try_into().unwrap()), 5, "size");
    // QUIT: the device closes the stream.
    send(&mut s, Message::new(A_WRTE, 5, dev_id, b"QUIT\0\0\0\0".to_vec()));
    loop {
        let m = recv(&mut s);
        if m.command == A_CLSE {
            assert_eq!((m.arg0, m.arg1), (dev_id, 5));
            break;
        }
    }
}

#[test]
fn device_keeps_one_write_in_flight() {
    let (_root, dev) = device();
    // A relative sync path is relative to the device's /.
    std::fs::write(dev.host_path("/big"), vec![7u8; 200_000]).unwrap();
    let mut s = connect(&dev);
    handshake(&mut s, 4096);
    let dev_id = open(&mut s, 3, "sync:");
    let mut req = b"RECV".to_vec();
    req.extend_from_slice(&3u32.to_le_bytes());
    req.extend_from_slice(b"big");
    send(&mut s, Message::new(A_WRTE, 3, dev_id, req));
    let mut first = recv(&mut s);
    if first.command == A_OKAY {
        first = recv(&mut s);
    }
    assert_eq!(first.command, A_WRTE);
    assert!(first.payload.len() <= 4096, "WRTE must respect the negotiated max payload");
    // Without our OKAY nothing more may come.
    s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    let mut h = [0u8; HEADER_LEN];
    while s.read_exact(&mut h).is_ok() {
        // The OKAY for our request may come (the device queued the whole file), a WRTE not.
        assert_eq!(&h[..4], b"OKAY", "device sent a second message before the first WRTE was acknowledged");
        assert_eq!(&h[12..16], &[0u8; 4]);
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Acknowledge everything and collect the file.
    let mut data = first.payload;
    send(&mut s, Message::new(A_OKAY, 3, dev_id, vec![]));
    while !(data.len() >= 8 && data.ends_with(b"DONE\0\0\0\0")) {
        let m = recv(&mut s);
        if m.command == A_OKAY {
            continue; // the late acknowledgement of our RECV request
        }
        assert_eq!(m.command, A_WRTE);
        data.extend_from_slice(&m.payload);
        send(&mut s, Message::new(A_OKAY, 3, dev_id, vec![]));
    }
    // DATA frames of <= 64 KiB, then DONE.
    let mut body = Vec::new();
    let mut p = 0;
    while &data[p..p + 4] == b"DATA" {
        let n = u32::from_le_bytes(data[p + 4..p + 8].try_into().unwrap()) as usize;
        assert!(n <= 64 * 1024);
        body.extend_from_slice(&data[p + 8..p + 8 + n]);
        p += 8 + n;
    }
    assert_eq!(&data[p..], b"DONE\0\0\0\0");
    assert_eq!(body, vec![7u8; 200_000]);
}

fn sign(key: &RsaPrivateKey, token: &[u8]) -> Vec<u8> {
    key.sign(Pkcs1v15Sign::new::<Sha1>(), token).unwrap()
}

fn expect_token(s: &mut TcpStream) -> Vec<u8> {
    let m = recv(s);
    assert_eq!((m.command, m.arg0, m.payload.len()), (A_AUTH, AUTH_TOKEN, TOKEN_LEN), "{m:?}");
    m.payload
}

/// Nothing arrives for a while (the device waits, as a phone showing its prompt would).
fn silent(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut b = [0u8; 1];
    let quiet = matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    quiet
}

#[test]
fn auth_challenges_and_accepts_only_a_listed_key() {
    let mut rng = rand::thread_rng();
    let (good, other) = (RsaPrivateKey::new(&mut rng, 2048).unwrap(), RsaPrivateKey::new(&mut rng, 2048).unwrap());
    let root = tempfile::tempdir().unwrap();
    let keys = root.path().join("adb_keys");
    std::fs::write(&keys, format!("{} tester@host\n", auth::encode_pubkey(&good.to_public_key()).unwrap())).unwrap();
    let dev = start(&root.path().join("dev"), Auth::Keys(keys));

    let mut s = connect(&dev);
    send(&mut s, Message::new(A_CNXN, A_VERSION, 4096, b"host::features=shell_v2\0".to_vec()));
    let t1 = expect_token(&mut s);
    // A key that is not listed gets a fresh token, as does a stale signature of a listed key.
    send(&mut s, Message::new(A_AUTH, AUTH_SIGNATURE, 0, sign(&other, &t1)));
    let t2 = expect_token(&mut s);
    assert_ne!(t1, t2, "every attempt gets a new token");
    send(&mut s, Message::new(A_AUTH, AUTH_SIGNATURE, 0, sign(&good, &t1)));
    let t3 = expect_token(&mut s);
    // Offering a public key is refused silently: no CNXN, the connection stays open.
    let offered = format!("{} stranger@host\0", auth::encode_pubkey(&other.to_public_key()).unwrap());
    send(&mut s, Message::new(A_AUTH, AUTH_RSAPUBLICKEY, 0, offered.into_bytes()));
    assert!(silent(&mut s), "a public key must not be accepted");
    // The listed key signing the current token gets the device online.
    send(&mut s, Message::new(A_AUTH, AUTH_SIGNATURE, 0, sign(&good, &t3)));
    let m = recv(&mut s);
    assert_eq!(m.command, A_CNXN);
    assert!(String::from_utf8(m.payload).unwrap().starts_with("device::"));
    let id = open(&mut s, 4, "shell:echo authed");
    let m = recv(&mut s);
    assert_eq!((m.command, m.arg0, m.payload.as_slice()), (A_WRTE, id, &b"authed\n"[..]));

    // Before authentication no stream may be opened: the device hangs up.
    let mut s = connect(&dev);
    send(&mut s, Message::new(A_CNXN, A_VERSION, 4096, b"host::\0".to_vec()));
    expect_token(&mut s);
    send(&mut s, Message::new(A_OPEN, 1, 0, b"shell:id\0".to_vec()));
    assert!(closed(&mut s), "OPEN before AUTH must end the connection");
}

#[test]
fn keys_file_problems_stop_the_device_from_starting() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("nope.pub");
    let e = LoopbackDevice::start(LoopbackConfig::new(root.path().join("d"), Auth::Keys(missing.clone())))
        .err()
        .expect("a missing keys file must be refused");
    assert!(e.to_string().contains(&missing.display().to_string()), "{e}");
    let junk = root.path().join("junk.pub");
    std::fs::write(&junk, "not a key\n").unwrap();
    let e = LoopbackDevice::start(LoopbackConfig::new(root.path().join("d"), Auth::Keys(junk))).err().unwrap();
    assert!(e.to_string().contains("no usable key"), "{e}");
}
