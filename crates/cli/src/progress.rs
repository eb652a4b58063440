//! A progress bar on a terminal, silence when piped.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use shoal_node::download::Progress;

pub struct Bar {
    bar: Option<ProgressBar>,
    name: std::sync::Mutex<String>,
}

impl Bar {
    /// A bar if stderr is a terminal and output is not quieted.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::hidden();
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:32!} [{bar:30.cyan/blue}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        Self {
            bar,
            name: std::sync::Mutex::new(String::new()),
        }
    }
}

impl Progress for Bar {
    fn start(&self, name: &str, total: u64) {
        let name = &*shoal_core::text::escape(name);
        if let Some(b) = &self.bar {
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            b.set_length(total);
            b.set_position(0);
            b.set_message(name.to_owned());
        }
        *self.name.lock().unwrap_or_else(|p| p.into_inner()) = name.to_owned();
    }

    fn sources(&self, n: usize) {
        if let Some(b) = &self.bar {
            let name = self.name.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let peers = if n == 1 {
                "1 peer".to_owned()
            } else {
                format!("{n} peers")
            };
            b.set_message(format!("{name} ({peers})"));
        }
    }

    fn advance(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
