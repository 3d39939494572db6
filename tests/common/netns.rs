//! Test "hosts" as Linux network namespaces: each [`Netns`] is a namespace of its own joined to
//! the root namespace by a veth pair on a private /30, and deleted on drop (also when the test
//! panics), with any process still inside killed. Processes started with [`Netns::command`] see
//! only the namespace's `lo` and its veth end, so they reach the root namespace at
//! [`Netns::host_addr`] (where a test's PostgreSQL listens) and nothing else: no default route,
//! no traffic beyond the pair.
//!
//! Needs root and `ip` (iproute2, installed by `tests/run.sh`). A test calls
//! [`Netns::available_or_skip`] first: as root (CI) a missing capability fails the test loudly.
//!
//! Addresses come from 10.213.0.0/16, cut into 16384 /30 subnets numbered `n`: the root end is
//! `10.213.(n/64).(4(n%64)+1)`, the namespace end `+2`. A subnet is claimed atomically by creating
//! the veth pair named after it (`qbs<n>h` in the root namespace, `qbs<n>n` moved into the
//! namespace): a second process or test picking the same `n` gets "File exists" and tries the
//! next one, so parallel test binaries cannot share a subnet. The search starts at a number
//! derived from the pid and the index and skips subnets that hold an address `ip -4 addr` shows.
//! Namespace names carry the pid (`qbfarm-<pid>-<seq>-<index>`); those of processes that are gone
//! (a test killed before its drop ran) are deleted by the next process's first `create`.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const SUBNETS: u32 = 16384;
const PREFIX: &str = "qbfarm-";

pub struct Netns {
    name: String,
    /// Subnet number, once the veth pair exists.
    subnet: Option<u32>,
    host_addr: String,
    ns_addr: String,
}

impl Netns {
    /// Whether this process can create namespaces: running as root with `ip` installed.
    pub fn available() -> bool {
        super::pg::is_root() && Command::new("ip").arg("-V").stdout(Stdio::null()).status().is_ok_and(|s| s.success())
    }

    /// `true` when namespaces can be created. Otherwise: a failure when running as root or with
    /// `CI` set (CI runs as root with iproute2 installed by `tests/run.sh`), or `false` with a note
    /// saying the test is skipped.
    pub fn available_or_skip() -> bool {
        if Self::available() {
            return true;
        }
        let why = if super::pg::is_root() {
            "`ip` (iproute2) is not installed; `apt-get install iproute2` or run `bash tests/run.sh`"
        } else {
            "network namespaces need root"
        };
        if super::pg::is_root() || std::env::var_os("CI").is_some() {
            panic!("cannot create network namespaces: {why} (required: CI is set or running as root)");
        }
        eprintln!("NOTE: skipping this test: cannot create network namespaces: {why}");
        false
    }

    /// Creates a namespace with a veth pair to the root namespace, addresses on both ends and
    /// `lo` up. `index` tells a test's hosts apart (it is part of the name and of where the subnet
    /// search starts); any value works, also the same one in parallel tests. Panics on failure.
    pub fn create(index: u32) -> Netns {
        static CLEANED: std::sync::Once = std::sync::Once::new();
        CLEANED.call_once(remove_stale);
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{pid}-{seq}-{index}");
        ip(&["netns", "add", &name]);
        // From here on, drop removes what exists, also when a step below panics.
        let mut ns = Netns { name, subnet: None, host_addr: String::new(), ns_addr: String::new() };

        let start = (pid.wrapping_mul(2_654_435_761) ^ seq.wrapping_mul(40_503) ^ index.wrapping_mul(9_973)) % SUBNETS;
        let taken = addresses_in_use();
        let mut claimed = None;
        for n in (0..SUBNETS).map(|i| (start + i) % SUBNETS) {
            let (host, peer) = addrs(n);
            if taken.iter().any(|a| u32::from(*a) & !3 == u32::from(host) & !3) {
                continue;
            }
            let o = ip_output(&["link", "add", &veth(n, 'h'), "type", "veth", "peer", "name", &veth(n, 'n')]);
            if o.status.success() {
                claimed = Some((n, host, peer));
                break;
            }
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("File exists"), "ip link add {} failed: {}", veth(n, 'h'), err.trim());
        }
        let (n, host, peer) = claimed.expect("no free /30 left in 10.213.0.0/16");
        ns.subnet = Some(n);
        ns.host_addr = host.to_string();
        ns.ns_addr = peer.to_string();
        let (h, p) = (veth(n, 'h'), veth(n, 'n'));
        ip(&["link", "set", &p, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{host}/30"), "dev", &h]);
        ip(&["link", "set", &h, "up"]);
        ip(&["-n", &ns.name, "addr", "add", &format!("{peer}/30"), "dev", &p]);
        ip(&["-n", &ns.name, "link", "set", &p, "up"]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Address of the root namespace's veth end: where a server for this host listens.
    pub fn host_addr(&self) -> &str {
        &self.host_addr
    }

    /// Address of the namespace's veth end: the source address of its connections.
    pub fn ns_addr(&self) -> &str {
        &self.ns_addr
    }

    /// Name of the veth end in the root namespace.
    pub fn host_veth(&self) -> String {
        veth(self.subnet.expect("veth"), 'h')
    }

    /// Name of the veth end inside the namespace.
    pub fn ns_veth(&self) -> String {
        veth(self.subnet.expect("veth"), 'n')
    }

    /// `program` run inside the namespace (`ip netns exec NAME program`); add its arguments.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        exec_in(&self.name, program)
    }
}

/// `program` run inside the namespace called `name`: `ip netns exec NAME program`, which execs
/// `program` (the child's pid is the program's).
pub fn exec_in(name: &str, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", name]).arg(program);
    c
}

impl Drop for Netns {
    fn drop(&mut self) {
        // A process still inside (a test's guard missed it, a daemon that would not stop) keeps
        // the namespace alive after `ip netns del`: kill whatever is left.
        let o = ip_output(&["netns", "pids", &self.name]);
        for pid in String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            eprintln!("Netns drop: killing process {pid}, left in {}", self.name);
            // SAFETY: plain syscall.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        // Deleting the root end removes the pair at once (a namespace's own devices go away
        // asynchronously after `ip netns del`).
        if let Some(n) = self.subnet {
            let o = ip_output(&["link", "del", &veth(n, 'h')]);
            if !o.status.success() {
                eprintln!("Netns drop: ip link del {}: {}", veth(n, 'h'), String::from_utf8_lossy(&o.stderr).trim());
            }
        }
        let o = ip_output(&["netns", "del", &self.name]);
        if !o.status.success() {
            eprintln!("Netns drop: ip netns del {}: {}", self.name, String::from_utf8_lossy(&o.stderr).trim());
        }
    }
}

fn veth(n: u32, end: char) -> String {
    format!("qbs{n}{end}") // at most 9 characters (IFNAMSIZ allows 15)
}

fn addrs(n: u32) -> (Ipv4Addr, Ipv4Addr) {
    let (third, fourth) = ((n / 64) as u8, (n % 64 * 4) as u8);
    (Ipv4Addr::new(10, 213, third, fourth + 1), Ipv4Addr::new(10, 213, third, fourth + 2))
}

/// IPv4 addresses on this (root) namespace's interfaces.
fn addresses_in_use() -> Vec<Ipv4Addr> {
    let o = ip(&["-4", "-o", "addr", "show"]);
    String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|w| w.split_once('/')?.0.parse().ok()).collect()
}

/// `ip netns list` names.
pub fn netns_list() -> Vec<String> {
    let o = ip(&["netns", "list"]);
    String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect()
}

/// Deletes namespaces named by this module for processes that no longer exist.
fn remove_stale() {
    for name in netns_list() {
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("Netns: deleting stale namespace {name} (process {pid} is gone)");
            let _ = ip_output(&["netns", "del", &name]);
        }
    }
}

fn ip_output(args: &[&str]) -> Output {
    Command::new("ip").args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running ip {args:?}: {e}"))
}

/// `ip ARGS`, panicking with its stderr when it fails.
fn ip(args: &[&str]) -> Output {
    let o = ip_output(args);
    assert!(o.status.success(), "ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
    o
}
