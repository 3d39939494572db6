//! The loopback device behaves like a device, checked with the real `adb` client and the real
//! bubblewrap (no mocks): push, pull and shell share one path space whose `/` is the device
//! root; the shell can neither read nor write the host outside it; sync never follows a
//! symlink out of it; and only hosts whose key is in the device's adb_keys get in.
//!
//! Every host file these tests plant lies outside the device root, in a temp dir of its own,
//! and holds a random marker that must never come back through adb.

mod common;

use common::{Adb, device, device_with, random_bytes, sha256_hex};
use quadbench_loopback::{Auth, Event, Faults, LoopbackConfig, LoopbackDevice};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A host directory outside the device root holding `secret` with a random marker.
fn host_secret() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("qb-host-marker-{}", sha256_hex(&random_bytes(16)));
    let path = dir.path().canonicalize().unwrap().join("secret");
    std::fs::write(&path, &marker).unwrap();
    (dir, path, marker)
}

#[test]
fn push_shell_and_pull_agree_on_device_paths() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults::default());
    let s = adb.connect(&dev);
    let data = random_bytes(200_000);
    let want = sha256_hex(&data);
    let local = adb.dir.path().join("f");
    std::fs::write(&local, &data).unwrap();
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/f"]);
    let out = adb.ok(&s, &["shell", "sha256sum /data/local/tmp/f"]);
    assert_eq!(out.stdout, format!("{want}  /data/local/tmp/f\n"), "{out:?}");
    // What the shell writes, pull reads, under the same name.
    adb.ok(&s, &["shell", "mkdir -p /data/local/tmp/d && cp /data/local/tmp/f /data/local/tmp/d/g"]);
    let back = adb.dir.path().join("g");
    adb.ok(&s, &["pull", "/data/local/tmp/d/g", back.to_str().unwrap()]);
    assert_eq!(sha256_hex(&std::fs::read(&back).unwrap()), want);
    assert!(adb.ok(&s, &["ls", "/data/local/tmp/d"]).stdout.contains(" g\n"));
    // A pushed program runs from its device path, with the host's libraries (bound /usr).
    let script = adb.dir.path().join("hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"hello from $0\"\n").unwrap();
    adb.ok(&s, &["push", script.to_str().unwrap(), "/data/local/tmp/bin/hello.sh"]);
    adb.ok(&s, &["shell", "chmod 755 /data/local/tmp/bin/hello.sh"]);
    let out = adb.ok(&s, &["shell", "/data/local/tmp/bin/hello.sh"]);
    assert_eq!(out.stdout, "hello from /data/local/tmp/bin/hello.sh\n");
    // On the host all of it lives under the root.
    assert_eq!(sha256_hex(&std::fs::read(dev.host_path("/data/local/tmp/d/g")).unwrap()), want);
}

#[test]
fn the_shell_cannot_read_the_host() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults::default());
    let s = adb.connect(&dev);
    let (_keep, secret, marker) = host_secret();
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let first = host_passwd.lines().next().unwrap().to_string();
    let probes = [
        format!("cat {}", secret.display()),
        format!("cat /proc/1/root{}", secret.display()),
        format!("cat /proc/self/root{}", secret.display()),
        "cat /etc/passwd".to_string(),
        "ls /root /home /etc".to_string(),
    ];
    for p in probes {
        let out = adb.run(&["-s", &s, "shell", &p], None, Duration::from_secs(30));
        assert!(!out.timed_out, "{out:?}");
        assert_ne!(out.code, Some(0), "`{p}` must fail on the device: {out:?}");
        assert!(!out.all().contains(&marker) && !out.all().contains(&first), "`{p}` read the host: {out:?}");
    }
    // The device sees its own /etc (none yet) and its own processes only.
    let out = adb.ok(&s, &["shell", "ls /; ls /proc | grep -c '^[0-9]'"]);
    assert!(out.stdout.contains("data\n") && out.stdout.contains("usr\n"), "{out:?}");
    let procs: usize = out.stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(procs < 20, "the device's /proc shows host processes ({procs}): {out:?}");
    // No capabilities: the root shell cannot mount its way out.
    let out = adb.run(&["-s", &s, "shell", "mkdir -p /mnt && mount -t tmpfs none /mnt"], None, Duration::from_secs(30));
    assert_ne!(out.code, Some(0), "mount must be refused: {out:?}");
    drop(dev);
}

#[test]
fn the_shell_cannot_write_the_host() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults::default());
    let s = adb.connect(&dev);
    let (_keep, secret, marker) = host_secret();
    let tag = sha256_hex(&random_bytes(8))[..16].to_string();
    let host_tmp = std::path::PathBuf::from(format!("/tmp/qb-loopback-escape-{tag}"));
    let cmd = format!(
        "touch {tmp}; echo owned > {secret}; touch {dir}/new; touch /usr/qb-{tag}; echo done",
        tmp = host_tmp.display(),
        secret = secret.display(),
        dir = secret.parent().unwrap().display()
    );
    let out = adb.run(&["-s", &s, "shell", &cmd], None, Duration::from_secs(30));
    assert!(out.stdout.contains("done"), "{out:?}");
    assert!(!host_tmp.exists(), "the device's /tmp is not the host's");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), marker, "a host file was written");
    assert!(!secret.parent().unwrap().join("new").exists());
    assert!(!std::path::Path::new(&format!("/usr/qb-{tag}")).exists());
    // The first write went to the device's own /tmp, inside the root.
    assert!(dev.host_path(&host_tmp.to_string_lossy()).exists());
    // Sync does not write into the system mounts either (read-only, as /system on a phone).
    let local = adb.dir.path().join("f");
    std::fs::write(&local, b"x").unwrap();
    for target in ["/usr/bin/qb-x", "/bin/qb-x", "/proc/qb-x"] {
        let out = adb.run(&["-s", &s, "push", local.to_str().unwrap(), target], None, Duration::from_secs(30));
        assert_ne!(out.code, Some(0), "push to {target} must fail: {out:?}");
        assert!(out.all().contains("Read-only file system"), "{out:?}");
    }
    assert!(!std::path::Path::new("/usr/bin/qb-x").exists());
}

#[test]
fn sync_never_follows_a_symlink_out_of_the_root() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults::default());
    let s = adb.connect(&dev);
    let (_keep, secret, marker) = host_secret();
    let depth = "../".repeat(secret.components().count() + 4);
    // Last-component links to a host file, absolute and by `..`; one made by the device's own
    // shell, one planted from the host side.
    adb.ok(&s, &["shell", &format!("ln -s {} /data/local/tmp/abs", secret.display())]);
    std::os::unix::fs::symlink(
        format!("{depth}{}", secret.strip_prefix("/").unwrap().display()),
        dev.host_path("/data/local/tmp/rel"),
    )
    .unwrap();
    adb.ok(&s, &["shell", &format!("ln -s {} /data/local/tmp/dir", secret.parent().unwrap().display())]);
    for link in ["/data/local/tmp/abs", "/data/local/tmp/rel", "/data/local/tmp/dir/secret"] {
        let back = adb.dir.path().join("pulled");
        let _ = std::fs::remove_file(&back);
        let out = adb.run(&["-s", &s, "pull", link, back.to_str().unwrap()], None, Duration::from_secs(30));
        assert_ne!(out.code, Some(0), "pull of {link} must fail: {out:?}");
        let got = std::fs::read_to_string(&back).unwrap_or_default();
        assert!(!got.contains(&marker) && !out.all().contains(&marker), "pull of {link} read the host file");
    }
    // Pushing through a symlinked directory: the link points nowhere on the device, so the
    // push fails (as adbd's would); once the device has that directory, the file lands there,
    // inside the root, never in the host directory.
    let local = adb.dir.path().join("f");
    std::fs::write(&local, b"pushed").unwrap();
    let out = adb.run(
        &["-s", &s, "push", local.to_str().unwrap(), "/data/local/tmp/dir/pushed"],
        None,
        Duration::from_secs(30),
    );
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(!secret.parent().unwrap().join("pushed").exists(), "push followed a symlink out of the root");
    adb.ok(&s, &["shell", &format!("mkdir -p {}", secret.parent().unwrap().display())]);
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/dir/pushed"]);
    assert!(!secret.parent().unwrap().join("pushed").exists(), "push followed a symlink out of the root");
    assert_eq!(
        std::fs::read(dev.host_path(&format!("{}/pushed", secret.parent().unwrap().display()))).unwrap(),
        b"pushed"
    );
    // Pushing over a link to a host file replaces the link.
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/abs"]);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), marker);
    assert!(dev.host_path("/data/local/tmp/abs").symlink_metadata().unwrap().is_file());
}

#[test]
fn a_host_with_an_unknown_key_is_unauthorized() {
    let known = Adb::new();
    let stranger = Adb::new();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let root = tempfile::tempdir().unwrap();
    let log = events.clone();
    let dev = LoopbackDevice::start_with_log(LoopbackConfig::new(root.path(), Auth::Keys(known.key())), move |e| {
        if matches!(e, Event::AuthRefused { .. } | Event::AuthFailed { .. } | Event::Authorized { .. }) {
            log.lock().unwrap().push(e.to_string());
        }
    })
    .unwrap_or_else(|e| panic!("starting the loopback device: {e}"));
    let serial = dev.serial();
    let out = stranger.run(&["connect", &serial], None, Duration::from_secs(20));
    assert!(!out.stdout.contains("connected to"), "{out:?}");
    let st = stranger.wait_state(&serial, |st| st == Some("unauthorized"), Duration::from_secs(10));
    assert_eq!(st.as_deref(), Some("unauthorized"));
    let marker = dev.host_path("/data/local/tmp/ran");
    let out = stranger.run(&["-s", &serial, "shell", "touch /data/local/tmp/ran"], None, Duration::from_secs(20));
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.all().contains("unauthorized"), "{out:?}");
    let out = stranger.run(&["-s", &serial, "pull", "/data/local/tmp", "x"], None, Duration::from_secs(20));
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(!marker.exists(), "an unauthorized host ran a command");
    assert!(events.lock().unwrap().iter().any(|e| e.contains("refused")), "{:?}", events.lock().unwrap());
    // The known server, meanwhile, gets in.
    known.connect(&dev);
    assert_eq!(known.state(&serial).as_deref(), Some("device"));
    assert_eq!(known.ok(&serial, &["shell", "echo in"]).stdout, "in\n");
}

#[test]
fn insecure_lets_any_host_in() {
    let adb = Adb::new();
    let (_root, dev) = device_with(Auth::Insecure, Faults::default());
    let s = adb.connect(&dev);
    assert_eq!(adb.state(&s).as_deref(), Some("device"));
    assert_eq!(adb.ok(&s, &["shell", "echo open; ls /data/local"]).stdout, "open\ntmp\n");
}
