//! Tools for field technicians: decoding captured dispenser traffic and watching an IFSF node.
//! They share the drivers' code, and the watch shares the sale source's guarantee: it never
//! sends a write.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use dispenser::{DispenserDriver, IfsfFpConfig, IfsfTcpConfig, IfsfTcpDriver, Tapped};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

#[derive(Subcommand)]
pub enum DartCommand {
    /// Decode hex frames (one per line, bytes separated by spaces) from stdin into JSON lines.
    Decode {
        /// Who sent the frames.
        #[arg(long, value_parser = ["pump", "master"])]
        from: String,
    },
}

#[derive(Subcommand)]
pub enum IfsfCommand {
    /// Decode IFSF over TCP/IP messages into JSON lines: hex lines from stdin (whole messages
    /// per line), or every TCP stream of a pcap capture with --pcap.
    Decode {
        /// A pcap file (tcpdump -w, or Wireshark "save as pcap").
        #[arg(long)]
        pcap: Option<std::path::PathBuf>,
    },
    /// Join a dispenser node as an additional controlling device and print every message and
    /// what it means, as JSON lines. Sends only reads and acknowledges, never a write. Read
    /// docs/sources.md first: some controllers drop their other client when one connects.
    Watch {
        /// The node's (or its controller's) HOST:PORT.
        address: String,
        /// The dispenser's node number (subnet 1).
        #[arg(long, default_value_t = 1)]
        node: u8,
        /// This tool's node number as a controlling device (subnet 2): one nobody else uses.
        #[arg(long, default_value_t = 9)]
        own_node: u8,
        /// Stop after this many seconds (default: at Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
    },
}

pub fn dart(command: DartCommand) -> Result<()> {
    let DartCommand::Decode { from } = command;
    let from: dart_protocol::decode_tool::Direction =
        from.parse().map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    dart_protocol::decode_tool::decode_lines(stdin, from, &mut stdout)?;
    Ok(())
}

pub fn ifsf(command: IfsfCommand) -> Result<()> {
    match command {
        IfsfCommand::Decode { pcap: None } => {
            let stdin = std::io::stdin().lock();
            let mut stdout = std::io::stdout().lock();
            ifsf_protocol::decode_tool::decode_hex_lines(stdin, &mut stdout)?;
            Ok(())
        }
        IfsfCommand::Decode { pcap: Some(path) } => decode_pcap(&path),
        IfsfCommand::Watch {
            address,
            node,
            own_node,
            seconds,
        } => watch_node(address, node, own_node, seconds.map(Duration::from_secs)),
    }
}

fn decode_pcap(path: &Path) -> Result<()> {
    let file = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut stdout = std::io::stdout().lock();
    ifsf_protocol::decode_tool::decode_pcap(&file, &mut stdout)?;
    Ok(())
}

fn watch_node(address: String, node: u8, own_node: u8, seconds: Option<Duration>) -> Result<()> {
    // Every point a node can have; the station's numbering does not matter here.
    let points = (1..=4)
        .map(|point| IfsfFpConfig {
            fp: point,
            point,
            grades: Vec::new(),
        })
        .collect();
    let config = IfsfTcpConfig::join(address, node, own_node, points);
    let mut driver = IfsfTcpDriver::new(config)?;
    let mut tap = driver.tap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (events_tx, mut events) = mpsc::channel(256);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(driver.run(events_tx, stop_rx));
        let until = seconds.map(|s| tokio::time::Instant::now() + s);
        let deadline = async {
            match until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                Some(tapped) = tap.recv() => println!("{}", tapped_line(tapped)),
                Some(event) = events.recv() => {
                    let event = serde_json::to_value(&event).unwrap_or(Value::Null);
                    println!("{}", json!({"event": event}));
                }
                _ = &mut deadline => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        let _ = stop.send(true);
        task.await??;
        Ok(())
    })
}

fn tapped_line(tapped: Tapped) -> Value {
    let (direction, message) = match tapped {
        Tapped::Received(message) => ("in", message),
        Tapped::Sent(message) => ("out", message),
        Tapped::Link(state) => return json!({"link": state}),
    };
    let mut object = ifsf_protocol::decode_tool::describe(Ok(message));
    object.insert("dir".into(), json!(direction));
    Value::Object(object)
}
