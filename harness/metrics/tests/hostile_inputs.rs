//! Files that used to take the loader down: a decompression bomb (a tiny PNG whose header claims
//! 100000x100000, which made the loader allocate 120 GB and abort) and special files (a FIFO
//! blocked `open` forever; a symlink to `/dev/zero`). Each load runs on its own thread under a
//! deadline, so a regression fails the test instead of hanging it.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use quadbench_metrics::{LoadError, load_image};

mod common;
use common::bomb_png;

/// Runs `load_image(path)` on a thread and fails the test when it has not returned in 10 s.
fn load_within_deadline(path: &Path) -> Result<quadbench_metrics::Loaded, LoadError> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(load_image(&p));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("load_image({}) still running after 10 s", path.display()))
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_decompression_bomb_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.png");
    let bytes = bomb_png(100_000, 100_000);
    assert!(bytes.len() < 80, "{} bytes", bytes.len());
    std::fs::write(&path, &bytes).unwrap();
    let t0 = Instant::now();
    let err = load_within_deadline(&path).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    let text = err.to_string();
    for part in [
        &path.display().to_string(),
        "100000x100000",
        "10000000000 pixels",
        "limit of 67108864 pixels",
        "--max-pixels",
        "QUADBENCH_MAX_IMAGE_PIXELS=10000000000",
    ] {
        assert!(text.contains(part), "{text}\n--- lacks: {part}");
    }
}

#[test]
fn special_files_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("golden.png");
    mkfifo(&fifo);
    let zero = dir.path().join("zero.png");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let cases: [(PathBuf, &str); 3] = [
        (fifo, "is a fifo (named pipe), not a regular file"),
        (zero, "is a character device (a symlink to /dev/zero), not a regular file"),
        (dir.path().to_path_buf(), "is a directory, not a regular file"),
    ];
    for (path, words) in cases {
        let text = load_within_deadline(&path).unwrap_err().to_string();
        assert!(text.contains(&path.display().to_string()) && text.contains(words), "{text}\n--- lacks: {words}");
    }
}
