//! Configuration of an IFSF over TCP/IP source, deserialisable so the agent can embed it in its
//! TOML config:
//!
//! ```toml
//! address = "192.168.1.21:3486"  # the dispenser board, or the controller speaking for it
//! node = 1                       # the dispenser's node number (subnet 1)
//! own_node = 9                   # the agent's node number as a controlling device (subnet 2)
//! mode = "join"                  # or "mirror": read a mirrored copy of the traffic, send nothing
//! [[fps]]
//! fp = 1        # the fuelling point's number at the station
//! point = 1     # its number on the dispenser node, 1..4
//! grades = ["92#", "95#"]
//! ```

use forecourt_events::FpNumber;
use ifsf_protocol::NodeAddress;
use serde::Deserialize;

use crate::driver::DispenserError;

/// How the agent follows the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfsfMode {
    /// Connect to the node as an additional controlling device ([`crate::IfsfTcpDriver`]).
    #[default]
    Join,
    /// Read a mirrored copy of the station system's own traffic with the node from a network
    /// interface (a switch mirror port), sending nothing at all ([`crate::IfsfMirrorDriver`]).
    Mirror,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfsfTcpConfig {
    /// `host:port` of the dispenser node (one per PetroChina "DIT" board) or of the forecourt
    /// controller that speaks IFSF for it.
    pub address: String,
    /// The dispenser's node number on subnet 1.
    pub node: u8,
    /// The agent's own node number on subnet 2 (controlling devices): one the station's own POS
    /// and controller do not use. Join mode only.
    #[serde(default)]
    pub own_node: u8,
    #[serde(default)]
    pub mode: IfsfMode,
    pub fps: Vec<IfsfFpConfig>,
    /// Transactions read back per fuelling point after each (re)connection, newest first: at
    /// least the device's transaction buffer (IFSF allows up to 15 kept transactions).
    #[serde(default = "default_history")]
    pub history: u16,
    /// The agent reads each fuelling point's state this often: the device's answers show the
    /// link is alive.
    #[serde(default = "default_poll_interval_s")]
    pub poll_interval_s: u64,
    /// No whole message from the device for this long: the link is dropped and made again (then
    /// the transaction buffer is read back).
    #[serde(default = "default_silence_timeout_s")]
    pub silence_timeout_s: u64,
    /// Join mode: where to send the agent's UDP heartbeat (e.g. `"192.168.1.255:3486"`, the
    /// station LAN's broadcast address), so devices that only talk to controlling devices they
    /// hear count the agent in. Off by default: *unverified* what a device does on hearing one.
    #[serde(default)]
    pub heartbeat_to: Option<String>,
    #[serde(default = "default_heartbeat_interval_s")]
    pub heartbeat_interval_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfsfFpConfig {
    /// The fuelling point's number at the station (as the zones and HQ know it).
    pub fp: FpNumber,
    /// Its number on the dispenser node, 1..=4 (database 0x21..0x24).
    pub point: u8,
    /// Grade name per logical nozzle: index 0 = nozzle 1. A sale on a nozzle with no name here
    /// carries the device's product number instead.
    #[serde(default)]
    pub grades: Vec<String>,
}

fn default_history() -> u16 {
    15
}
fn default_poll_interval_s() -> u64 {
    10
}
fn default_silence_timeout_s() -> u64 {
    35
}
fn default_heartbeat_interval_s() -> u64 {
    10
}

/// Node numbers run 1..=127 on an IFSF subnet.
const MAX_NODE: u8 = 127;

impl IfsfTcpConfig {
    /// Joining node `node` at `address` as controlling device `own_node`, watching `fps`, with
    /// every other setting at the config file's default.
    pub fn join(address: String, node: u8, own_node: u8, fps: Vec<IfsfFpConfig>) -> Self {
        IfsfTcpConfig {
            address,
            node,
            own_node,
            mode: IfsfMode::Join,
            fps,
            history: default_history(),
            poll_interval_s: default_poll_interval_s(),
            silence_timeout_s: default_silence_timeout_s(),
            heartbeat_to: None,
            heartbeat_interval_s: default_heartbeat_interval_s(),
        }
    }

    pub fn device(&self) -> NodeAddress {
        NodeAddress::new(NodeAddress::DISPENSER_SUBNET, self.node)
    }

    pub fn own(&self) -> NodeAddress {
        NodeAddress::new(NodeAddress::CONTROLLER_SUBNET, self.own_node)
    }

    pub fn validate(&self) -> Result<(), DispenserError> {
        let err = |m: String| Err(DispenserError::Config(m));
        crate::tcp_link::check_host_port(&self.address, "192.168.1.21:3486")?;
        let mut nodes = vec![("node", self.node)];
        if self.mode == IfsfMode::Join {
            nodes.push(("own_node", self.own_node));
        }
        for (what, node) in nodes {
            if !(1..=MAX_NODE).contains(&node) {
                return err(format!("{what} {node} outside 1..{MAX_NODE}"));
            }
        }
        if self.mode == IfsfMode::Mirror && self.address.parse::<std::net::SocketAddrV4>().is_err()
        {
            return err(format!(
                "mirror mode: address {:?} must be the node's IPv4 address and port, as on the wire (e.g. \"192.168.1.21:3486\")",
                self.address
            ));
        }
        if self.fps.is_empty() {
            return err("no fuelling points configured".into());
        }
        for (i, f) in self.fps.iter().enumerate() {
            if !(1..=4).contains(&f.point) {
                return err(format!(
                    "fp {}: point {} outside 1..4 (a dispenser node has at most four)",
                    f.fp, f.point
                ));
            }
            if self.fps[..i]
                .iter()
                .any(|o| o.point == f.point || o.fp == f.fp)
            {
                return err(format!("fp {} / point {} configured twice", f.fp, f.point));
            }
        }
        if let Some(to) = &self.heartbeat_to {
            if to.parse::<std::net::SocketAddrV4>().is_err() || self.mode == IfsfMode::Mirror {
                return err(format!(
                    "heartbeat_to {to:?}: an IPv4 address and UDP port (e.g. \"192.168.1.255:3486\"), in join mode only"
                ));
            }
            if self.heartbeat_interval_s == 0 {
                return err("heartbeat_interval_s must be above 0".into());
            }
        }
        if !(1..=100).contains(&self.history) {
            return err(format!("history {} outside 1..100", self.history));
        }
        if self.poll_interval_s == 0 || self.silence_timeout_s <= self.poll_interval_s {
            return err(format!(
                "silence_timeout_s ({}) must exceed poll_interval_s ({}), which must be above 0",
                self.silence_timeout_s, self.poll_interval_s
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> IfsfTcpConfig {
        toml::from_str(text).unwrap()
    }

    const GOOD: &str = r#"
address = "127.0.0.1:3486"
node = 1
own_node = 9
fps = [{ fp = 3, point = 1, grades = ["92#"] }, { fp = 4, point = 2 }]
"#;

    #[test]
    fn a_good_config_validates_with_defaults() {
        let c = config(GOOD);
        c.validate().unwrap();
        assert_eq!(
            (c.history, c.poll_interval_s, c.silence_timeout_s),
            (15, 10, 35)
        );
        assert_eq!(c.device(), NodeAddress::new(1, 1));
        assert_eq!(c.own(), NodeAddress::new(2, 9));
    }

    #[test]
    fn mirror_mode_needs_no_node_of_its_own() {
        let c = config(&GOOD.replace("own_node = 9", "mode = \"mirror\""));
        c.validate().unwrap();
        assert_eq!(c.mode, IfsfMode::Mirror);
    }

    #[test]
    fn mistakes_are_explained() {
        for (from, to, says) in [
            ("127.0.0.1:3486", "127.0.0.1", "is not host:port"),
            ("own_node = 9", "own_node = 0", "own_node 0 outside"),
            ("own_node = 9", "", "own_node 0 outside"),
            (
                "127.0.0.1:3486\"",
                "station-pc:3486\"\nmode = \"mirror\"",
                "IPv4 address",
            ),
            ("point = 2", "point = 5", "point 5 outside 1..4"),
            ("point = 2", "point = 1", "configured twice"),
        ] {
            let c = config(&GOOD.replace(from, to));
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(says), "{to}: {e}");
        }
    }
}
