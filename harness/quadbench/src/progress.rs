//! The human reporter: run-loop events on stderr, as a progress bar on a terminal and as plain
//! lines otherwise (CI logs).

use indicatif::{ProgressBar, ProgressStyle};
use quadbench::run::{Event, Reporter};
use std::io::IsTerminal;

pub struct StderrReporter {
    bar: Option<ProgressBar>,
    tty: bool,
}

impl StderrReporter {
    pub fn new() -> Self {
        StderrReporter { bar: None, tty: std::io::stderr().is_terminal() }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Reporter for StderrReporter {
    fn event(&mut self, e: &Event) {
        match e {
            Event::Step { message } => {
                if let Some(b) = &self.bar {
                    b.println(message)
                } else {
                    eprintln!("{message}")
                }
            }
            Event::RunStart { index, total, id } => {
                if self.tty {
                    let b = self.bar.get_or_insert_with(|| {
                        let b = ProgressBar::new(*total as u64);
                        b.set_style(
                            ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed_precise} {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        b.enable_steady_tick(std::time::Duration::from_millis(200));
                        b
                    });
                    b.set_position(*index as u64 - 1);
                    b.set_message(id.clone());
                } else {
                    eprintln!("[{index}/{total}] {id}: started");
                }
            }
            Event::Heartbeat { id, phase, requests, .. } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!("{id}: {phase}, {requests} requests"));
                }
            }
            Event::RunEnd { id, status, note } => {
                let line = format!("{id}: {status:?} ({note})");
                if let Some(b) = &self.bar {
                    b.inc(1);
                    b.println(line);
                } else {
                    eprintln!("{line}");
                }
            }
            Event::Retry { id, attempt, retries, wait_ms, error } => {
                let line = format!(
                    "{id}: infrastructure error, retry {attempt}/{retries} in {:.1} s: {error}",
                    *wait_ms as f64 / 1e3
                );
                if let Some(b) = &self.bar { b.println(line) } else { eprintln!("{line}") }
            }
            Event::DeviceUnhealthy { device, error } => {
                let line = format!("device {device} marked unhealthy, its remaining runs are skipped: {error}");
                if let Some(b) = &self.bar { b.println(line) } else { eprintln!("{line}") }
            }
            Event::ResultsWritten { path } => {
                if self.bar.is_none() {
                    eprintln!("results written to {}", path.display());
                }
            }
        }
    }
}
