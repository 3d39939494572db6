//! The human reporter: run-loop events on stderr, as a progress bar on a terminal and as plain
//! lines otherwise (CI logs).

use crate::events::{Event, Reporter};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub struct StderrReporter {
    bar: Option<ProgressBar>,
    tty: bool,
}

impl Default for StderrReporter {
    fn default() -> Self {
        Self::new()
    }
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

    fn line(&self, line: String) {
        if let Some(b) = &self.bar { b.println(line) } else { eprintln!("{line}") }
    }

    fn started(&mut self, index: usize, total: usize, id: &str) {
        if !self.tty {
            return eprintln!("[{index}/{total}] {id}: started");
        }
        let b = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        });
        b.set_position(index as u64 - 1);
        b.set_message(id.to_string());
    }
}

impl Reporter for StderrReporter {
    fn event(&mut self, e: &Event) {
        match e {
            Event::Step { message } => self.line(message.clone()),
            Event::ScenarioStarted { resumed_runs, .. } if *resumed_runs > 0 => {
                self.line(format!("resuming: {resumed_runs} finished runs are kept"))
            }
            Event::ScenarioStarted { .. } => {}
            Event::RunStarted { index, total, id } => self.started(*index, *total, id),
            Event::Heartbeat { id, phase, requests, .. } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!("{id}: {phase}, {requests} requests"));
                }
            }
            Event::RunFinished { record, note, .. } => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
                self.line(format!("{}: {:?} ({note})", record.id, record.status));
            }
            Event::Retry { id, attempt, retries, wait_ms, error } => self.line(format!(
                "{id}: infrastructure error, retry {attempt}/{retries} in {:.1} s: {error}",
                *wait_ms as f64 / 1e3
            )),
            Event::DeviceUnhealthy { device, error } => {
                self.line(format!("device {device} marked unhealthy, its remaining runs are skipped: {error}"))
            }
            Event::ScenarioFinished { out } => {
                if self.bar.is_none() {
                    eprintln!("results written to {}", out.join("results.json").display());
                }
            }
        }
    }
}

/// A bar of `len` steps on stderr with a message, hidden when stderr is not a terminal.
pub fn bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    b
}
