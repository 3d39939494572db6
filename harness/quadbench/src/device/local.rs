//! The `local` transport: the host plays the device. Files are staged in a work directory
//! (hard-linked when possible, else copied) and the runner runs as a subprocess.

use super::{DeviceError, DeviceInfo, DeviceProfile, ExecLimits, ExecOutcome, Transport};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

pub struct Local {
    name: String,
    root: PathBuf,
}

pub fn open(p: &DeviceProfile) -> Result<Box<dyn Transport>, DeviceError> {
    let root = p.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("quadbench-local-device"));
    std::fs::create_dir_all(&root).map_err(|e| DeviceError::Infra {
        device: p.name.clone(),
        message: format!(
            "cannot create work dir {}: {e}; set `work_dir:` in {} to a writable directory",
            root.display(),
            p.path.display()
        ),
    })?;
    Ok(Box::new(Local { name: p.name.clone(), root }))
}

impl Local {
    fn infra(&self, message: String) -> DeviceError {
        DeviceError::Infra { device: self.name.clone(), message }
    }

    fn path(&self, remote: &str) -> Result<PathBuf, DeviceError> {
        if !crate::safe_relative_path(remote) {
            return Err(self.infra(format!("refusing unsafe remote path `{remote}`")));
        }
        Ok(self.root.join(remote))
    }
}

/// Keep the last `max` bytes of a growing text.
fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut i = s.len() - max;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    s[i..].to_string()
}

impl Transport for Local {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            name: self.name.clone(),
            transport: "local".into(),
            model: std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()),
            soc: None,
            abi: Some(format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)),
            os_version: std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        }
    }

    fn push(&mut self, local: &Path, sha256: &str, remote: &str) -> Result<bool, DeviceError> {
        let dst = self.path(remote)?;
        let marker = dst.with_file_name(format!(
            ".{}.sha256",
            dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        let local_len =
            std::fs::metadata(local).map_err(|e| self.infra(format!("cannot read {}: {e}", local.display())))?.len();
        if dst.exists()
            && std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == sha256)
            && std::fs::metadata(&dst).is_ok_and(|m| m.len() == local_len)
        {
            return Ok(false);
        }
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(|e| self.infra(format!("cannot create {}: {e}", p.display())))?;
        }
        let _ = std::fs::remove_file(&dst);
        if std::fs::hard_link(local, &dst).is_err() {
            let tmp = dst.with_extension("part");
            std::fs::copy(local, &tmp).and_then(|_| std::fs::rename(&tmp, &dst)).map_err(|e| {
                self.infra(format!(
                    "cannot stage {} -> {}: {e} (disk full or not writable?)",
                    local.display(),
                    dst.display()
                ))
            })?;
        }
        std::fs::write(&marker, sha256).map_err(|e| self.infra(format!("cannot write {}: {e}", marker.display())))?;
        Ok(true)
    }

    fn exec(
        &mut self,
        argv: &[String],
        cwd: &str,
        lib_dirs: &[String],
        limits: ExecLimits,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<ExecOutcome, DeviceError> {
        let cwd = self.path(cwd)?;
        let exe = self.path(&argv[0])?;
        let mut cmd = Command::new(&exe);
        if !lib_dirs.is_empty() {
            let mut dirs = lib_dirs.iter().map(|d| self.path(d)).collect::<Result<Vec<_>, _>>()?;
            dirs.extend(
                std::env::var_os("LD_LIBRARY_PATH")
                    .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
            cmd.env(
                "LD_LIBRARY_PATH",
                std::env::join_paths(dirs).map_err(|e| self.infra(format!("cannot build LD_LIBRARY_PATH: {e}")))?,
            );
        }
        let mut child = cmd
            .args(&argv[1..])
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.infra(format!("cannot start {}: {e}", exe.display())))?;
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("piped");
        let out_thread = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped");
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                if s.len() > 64 * 1024 {
                    s = tail(&s, 16 * 1024);
                }
            }
            s
        });
        let start = Instant::now();
        let mut last = Instant::now();
        let mut timed_out = false;
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(line) => {
                    last = Instant::now();
                    on_line(&line);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if start.elapsed() > limits.deadline || last.elapsed() > limits.max_silence {
                timed_out = true;
                let _ = child.kill();
                break;
            }
        }
        let status = child.wait().map_err(|e| self.infra(format!("wait failed: {e}")))?;
        let _ = out_thread.join();
        let stderr_all = err_thread.join().unwrap_or_default();
        Ok(ExecOutcome { exit_code: status.code(), stderr_tail: tail(&stderr_all, 4000), timed_out })
    }

    fn pull(&mut self, remote: &str, local: &Path) -> Result<(), DeviceError> {
        let src = self.path(remote)?;
        if let Some(p) = local.parent() {
            std::fs::create_dir_all(p).map_err(|e| self.infra(format!("cannot create {}: {e}", p.display())))?;
        }
        std::fs::copy(&src, local)
            .map(|_| ())
            .map_err(|e| self.infra(format!("cannot pull {} -> {}: {e}", src.display(), local.display())))
    }

    fn remove_dir(&mut self, remote: &str) -> Result<(), DeviceError> {
        let p = self.path(remote)?;
        match std::fs::remove_dir_all(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.infra(format!("cannot remove {}: {e}", p.display()))),
        }
    }
}
