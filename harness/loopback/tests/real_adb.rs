//! The loopback device validated by the real `adb` client (Debian package `adb`; CI installs it
//! in `.ci/run`). No mocks: every check goes through an adb server we start on a private port
//! (so tests do not fight over 5037), authenticated by the device with that server's own key
//! (see `common`). Each test kills its adb server when it ends. Confinement and authentication
//! have their own file, `confinement.rs`.

mod common;

use common::{Adb, MODEL, device, random_bytes, sha256_hex};
use quadbench_loopback::Faults;
use std::time::{Duration, Instant};

const BIG: usize = 3 * 1024 * 1024;

#[test]
fn real_adb_shell_push_pull_ls() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults::default());
    let s = adb.connect(&dev);
    assert_eq!(adb.state(&s).as_deref(), Some("device"));

    // Shell v2: exit code propagated, stdout and stderr separate.
    let out = adb.run(&["-s", &s, "shell", "exit 7"], None, Duration::from_secs(30));
    assert_eq!(out.code, Some(7), "exit code must propagate: {out:?}");
    assert_eq!(adb.ok(&s, &["shell", "echo", "hi"]).stdout, "hi\n");
    let out = adb.run(&["-s", &s, "shell", "echo out; echo err >&2; exit 3"], None, Duration::from_secs(30));
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (Some(3), "out\n", "err\n"), "{out:?}");
    // Shell v1 (`-x` disables the shell protocol): merged output, no exit code.
    let out = adb.run(&["-s", &s, "shell", "-x", "echo v1; echo e1 >&2; exit 5"], None, Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("v1") && out.stdout.contains("e1"), "{out:?}");
    // exec: raw, merged.
    let out = adb.ok(&s, &["exec-out", "printf raw; printf bits >&2"]);
    assert!(out.stdout.contains("raw") && out.stdout.contains("bits"), "{out:?}");
    // The shell runs in the device's / (its root), as adbd's does.
    let out = adb.ok(&s, &["shell", "pwd -P; echo $TMPDIR"]);
    assert_eq!(out.stdout, "/\n/data/local/tmp\n");

    // getprop answers from the configured props.
    assert_eq!(adb.ok(&s, &["shell", "getprop", "ro.product.model"]).stdout, format!("{MODEL}\n"));
    assert!(adb.ok(&s, &["shell", "getprop"]).stdout.contains(&format!("[ro.product.model]: [{MODEL}]")));

    // push / pull a 3 MB random file through /data/local/tmp.
    let data = random_bytes(BIG);
    let want = sha256_hex(&data);
    let local = adb.dir.path().join("big.bin");
    std::fs::write(&local, &data).unwrap();
    let t = Instant::now();
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/up/big.bin"]);
    let push_time = t.elapsed();
    let on_device = dev.host_path("/data/local/tmp/up/big.bin");
    assert_eq!(sha256_hex(&std::fs::read(&on_device).unwrap()), want);
    let back = adb.dir.path().join("back.bin");
    let t = Instant::now();
    adb.ok(&s, &["pull", "/data/local/tmp/up/big.bin", back.to_str().unwrap()]);
    let pull_time = t.elapsed();
    assert_eq!(sha256_hex(&std::fs::read(&back).unwrap()), want);
    // One path space: the shell sees the pushed file under the same device path.
    let out = adb.ok(&s, &["shell", "sha256sum /data/local/tmp/up/big.bin"]);
    assert_eq!(out.stdout.split_whitespace().next(), Some(want.as_str()), "{out:?}");

    // Listing through sync and through the shell.
    let out = adb.ok(&s, &["ls", "/data/local/tmp/up"]);
    let line = out.stdout.lines().find(|l| l.ends_with(" big.bin")).unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.contains(&format!("{:08x}", BIG)), "size in ls line {line:?}");
    assert!(adb.ok(&s, &["shell", "ls /data/local/tmp/up"]).stdout.contains("big.bin"));

    // stdin reaches the command (v2 stdin + close-stdin packets).
    let out = adb.run(
        &["-s", &s, "shell", "cd /data/local/tmp && cat > in.bin; wc -c < in.bin"],
        Some(&local),
        Duration::from_secs(30),
    );
    assert_eq!(out.stdout.trim(), BIG.to_string(), "{out:?}");
    assert_eq!(sha256_hex(&std::fs::read(dev.host_path("/data/local/tmp/in.bin")).unwrap()), want);

    // `..` above / stays at the device's / (as in a chroot): nothing lands beside the root.
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/../../../../../x"]);
    assert!(dev.root().join("x").is_file());
    assert!(!dev.root().parent().unwrap().join("x").exists());
    // Missing files are reported.
    let out =
        adb.run(&["-s", &s, "pull", "/data/local/tmp/nope", back.to_str().unwrap()], None, Duration::from_secs(30));
    assert_ne!(out.code, Some(0), "{out:?}");
    // adb 29 prints sync errors on stdout, newer versions on stderr.
    assert!(out.all().contains("No such file"), "{out:?}");

    // Output is streamed live, not at exit.
    let started = Instant::now();
    let (mut child, so, se) = adb.spawn(&["-s", &s, "shell", "echo first; sleep 3; echo second"], None);
    let mut seen_live = false;
    while started.elapsed() < Duration::from_millis(2500) {
        if std::fs::read_to_string(&so).unwrap_or_default().contains("first") {
            seen_live = child.try_wait().unwrap().is_none();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Adb::wait(&mut child, &so, &se, started, Duration::from_secs(30));
    assert!(seen_live, "first line must arrive while the command still runs: {out:?}");
    assert_eq!(out.stdout, "first\nsecond\n");
    eprintln!("push 3 MiB: {push_time:?}, pull 3 MiB: {pull_time:?}");
    dev.stop();
}

#[test]
fn host_closing_a_shell_kills_the_command() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults::default());
    let s = adb.connect(&dev);
    let marker = dev.host_path("/data/local/tmp/killed-marker");
    // The command would create the marker after 2 s unless it is killed with its shell.
    let out =
        adb.run(&["-s", &s, "shell", "sleep 2; touch /data/local/tmp/killed-marker"], None, Duration::from_millis(700));
    assert!(out.timed_out, "{out:?}");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!marker.exists(), "the command survived the host closing its stream");
}

#[test]
fn fault_corrupt_push_changes_the_pulled_hash() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults { corrupt_push: true, ..Faults::default() });
    let s = adb.connect(&dev);
    let data = random_bytes(256 * 1024);
    let local = adb.dir.path().join("f.bin");
    std::fs::write(&local, &data).unwrap();
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/f.bin"]);
    let back = adb.dir.path().join("back.bin");
    adb.ok(&s, &["pull", "/data/local/tmp/f.bin", back.to_str().unwrap()]);
    let got = std::fs::read(&back).unwrap();
    assert_eq!(got.len(), data.len());
    assert_ne!(sha256_hex(&got), sha256_hex(&data), "corrupt_push must change the file");
    // Turning the fault off at run time gives a faithful push again.
    dev.set_faults(Faults::default());
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/f.bin"]);
    adb.ok(&s, &["pull", "/data/local/tmp/f.bin", back.to_str().unwrap()]);
    assert_eq!(sha256_hex(&std::fs::read(&back).unwrap()), sha256_hex(&data));
}

#[test]
fn fault_drop_after_bytes_fails_push_and_pull_without_hanging() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults::default());
    let s = adb.connect(&dev);
    let data = random_bytes(BIG);
    let local = adb.dir.path().join("big.bin");
    std::fs::write(&local, &data).unwrap();
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/big.bin"]);

    dev.set_faults(Faults { drop_after_bytes: Some(64 * 1024), ..Faults::default() });
    let back = adb.dir.path().join("back.bin");
    let out =
        adb.run(&["-s", &s, "pull", "/data/local/tmp/big.bin", back.to_str().unwrap()], None, Duration::from_secs(30));
    assert!(!out.timed_out, "pull must fail, not hang: {out:?}");
    assert_ne!(out.code, Some(0), "pull through a dropped connection must fail: {out:?}");
    eprintln!("dropped pull failed after {:?}", out.elapsed);

    // The adb server reconnects (the new connection gets the same budget); push fails as well.
    let st = adb.wait_state(&s, |st| st == Some("device"), Duration::from_secs(15));
    assert_eq!(st.as_deref(), Some("device"), "adb did not reconnect after the drop");
    let out = adb.run(
        &["-s", &s, "push", local.to_str().unwrap(), "/data/local/tmp/again.bin"],
        None,
        Duration::from_secs(30),
    );
    assert!(!out.timed_out, "push must fail, not hang: {out:?}");
    assert_ne!(out.code, Some(0), "push through a dropped connection must fail: {out:?}");
    assert!(out.all().contains("adb: error"), "{out:?}");
}

#[test]
fn fault_stall_blocks_until_cleared() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults::default());
    let s = adb.connect(&dev);
    let data = random_bytes(BIG);
    std::fs::write(dev.host_path("/data/local/tmp/big.bin"), &data).unwrap();
    dev.set_faults(Faults { stall_after_bytes: Some(64 * 1024), ..Faults::default() });
    let back = adb.dir.path().join("back.bin");
    let started = Instant::now();
    let (mut child, so, se) = adb.spawn(&["-s", &s, "pull", "/data/local/tmp/big.bin", back.to_str().unwrap()], None);
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "a stalled pull must not finish");
    dev.set_faults(Faults::default());
    let out = Adb::wait(&mut child, &so, &se, started, Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "pull must complete once the stall is cleared: {out:?}");
    assert_eq!(sha256_hex(&std::fs::read(&back).unwrap()), sha256_hex(&data));
}

#[test]
fn fault_offline_via_control_file() {
    let adb = Adb::new();
    let (_root, dev) = device(&adb, Faults::default());
    let s = adb.connect(&dev);
    let control = dev.root().join(".loopback/faults.json");
    std::fs::create_dir_all(control.parent().unwrap()).unwrap();
    std::fs::write(&control, r#"{"offline": true}"#).unwrap();
    let st = adb.wait_state(&s, |st| st != Some("device"), Duration::from_secs(10));
    assert_ne!(st.as_deref(), Some("device"), "an offline device must not be listed as `device`");
    assert!(dev.faults().offline);
    // Still offline a little later: the server's reconnects are refused.
    std::thread::sleep(Duration::from_secs(1));
    assert_ne!(adb.state(&s).as_deref(), Some("device"));
    let out = adb.run(&["-s", &s, "shell", "true"], None, Duration::from_secs(15));
    assert_ne!(out.code, Some(0), "{out:?}");

    // Deleting the control file clears the faults and the device comes back.
    std::fs::remove_file(&control).unwrap();
    let st = adb.wait_state(&s, |st| st == Some("device"), Duration::from_secs(20));
    if st.as_deref() != Some("device") {
        adb.connect(&dev);
    }
    assert_eq!(adb.ok(&s, &["shell", "echo back"]).stdout, "back\n");
}
