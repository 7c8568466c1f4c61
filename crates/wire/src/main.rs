//! `dialtone-wire`: forwards every frame between two network interfaces, delayed, jittered and lost as
//! asked (see the library). Run it in a network namespace of its own whose two interfaces have no
//! addresses; the namespaces on either side then talk as over one cable.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use dialtone_wire::link::{MAX_FRAME, RawLink};
use dialtone_wire::{Direction, Impairment, Outage, Wire};

/// Forwards frames between two interfaces with delay, jitter, loss and outages, each way.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// One side's interface.
    #[arg(long)]
    a: String,
    /// The other side's interface.
    #[arg(long)]
    b: String,
    /// Added to every frame, each way, in milliseconds (a round trip takes twice this).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Up to this much more, at random, in milliseconds (frames keep their order).
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Percent of frames lost at random, each way.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Random loss begins this many milliseconds after the wire starts.
    #[arg(long, default_value_t = 0)]
    loss_from_ms: u64,
    /// Every frame lost for a while, each way: START+LENGTH in milliseconds from the wire's start
    /// (`10000+1000`: one second of nothing after ten).
    #[arg(long, value_parser = outage)]
    outage: Option<Outage>,
    /// Only impair frames going from A to B (the other way is a plain cable).
    #[arg(long)]
    one_way: bool,
    /// Makes the randomness repeatable.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn outage(text: &str) -> Result<Outage, String> {
    let bad = || format!("{text:?} is not START+LENGTH in milliseconds, like 10000+1000");
    let (start, length) = text.split_once('+').ok_or_else(bad)?;
    let number = |part: &str| part.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| bad());
    Ok(Outage { start: number(start)?, length: number(length)? })
}

/// The wire, and a signal for the sender when a frame went on it.
struct Shared {
    wire: Mutex<Wire>,
    queued: Condvar,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let impairment = Impairment {
        delay: Duration::from_millis(cli.delay_ms),
        jitter: Duration::from_millis(cli.jitter_ms),
        loss: cli.loss / 100.0,
        loss_from: Duration::from_millis(cli.loss_from_ms),
        outage: cli.outage,
    }
    .checked()?;
    let back = if cli.one_way { Impairment::default() } else { impairment };
    let a = Arc::new(RawLink::open(&cli.a)?);
    let b = Arc::new(RawLink::open(&cli.b)?);
    let shared = Arc::new(Shared {
        wire: Mutex::new(Wire::new(Instant::now(), impairment, back, cli.seed)),
        queued: Condvar::new(),
    });
    let readers = [(a.clone(), Direction::AtoB), (b.clone(), Direction::BtoA)].map(|(link, direction)| {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("read-{}", link.name()))
            .spawn(move || {
                // A side that cannot be read is a cable cut for good: say so and stop.
                if let Err(error) = read(&link, direction, &shared) {
                    eprintln!("dialtone-wire: {error:#}");
                    std::process::exit(1);
                }
            })
            .context("starting a reader")
    });
    for reader in readers {
        reader?;
    }
    eprintln!("dialtone-wire: {} <-> {} ready ({impairment:?} one way, {back:?} back)", cli.a, cli.b);
    send(&a, &b, &shared)
}

/// Reads frames from `link` onto the wire, going `direction`; returns only on an error.
fn read(link: &RawLink, direction: Direction, shared: &Shared) -> anyhow::Result<()> {
    let mut buffer = vec![0u8; MAX_FRAME];
    loop {
        let Some(length) = link.receive(&mut buffer).with_context(|| format!("reading {}", link.name()))? else {
            continue;
        };
        let mut wire = shared.wire.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        wire.push(direction, buffer[..length].to_vec(), Instant::now());
        shared.queued.notify_one();
    }
}

/// Sends each frame when it is due, out of the interface on the far side.
fn send(a: &RawLink, b: &RawLink, shared: &Shared) -> anyhow::Result<()> {
    let mut wire = shared.wire.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let now = Instant::now();
        while let Some((direction, frame)) = wire.poll_transmit(now) {
            let out = if direction == Direction::AtoB { b } else { a };
            // A frame the far side refuses (its interface went down) is lost, as on a cable.
            if let Err(error) = out.send(&frame) {
                eprintln!("dialtone-wire: sending on {}: {error}", out.name());
            }
        }
        wire = match wire.poll_timeout() {
            Some(due) => {
                let wait = due.saturating_duration_since(Instant::now());
                shared.queued.wait_timeout(wire, wait).unwrap_or_else(|poisoned| poisoned.into_inner()).0
            }
            None => shared.queued.wait(wire).unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
    }
}
