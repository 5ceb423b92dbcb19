//! Logical node addresses: every IFSF device is a node, two bytes, subnet then node.

use std::fmt;

/// A node's logical address (LNA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddress {
    pub subnet: u8,
    pub node: u8,
}

impl NodeAddress {
    /// Dispensers.
    pub const DISPENSER_SUBNET: u8 = 1;
    /// Controlling devices: POS, forecourt server, and a watch-only agent that joins as one.
    pub const CONTROLLER_SUBNET: u8 = 2;
    /// Tank gauges.
    pub const TANK_GAUGE_SUBNET: u8 = 9;

    pub const fn new(subnet: u8, node: u8) -> Self {
        NodeAddress { subnet, node }
    }

    pub fn from_bytes(bytes: [u8; 2]) -> Self {
        NodeAddress::new(bytes[0], bytes[1])
    }

    pub fn to_bytes(self) -> [u8; 2] {
        [self.subnet, self.node]
    }

    pub fn is_dispenser(self) -> bool {
        self.subnet == Self::DISPENSER_SUBNET
    }
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.subnet, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_subnet_then_node() {
        let a = NodeAddress::from_bytes([1, 7]);
        assert_eq!(a, NodeAddress::new(NodeAddress::DISPENSER_SUBNET, 7));
        assert!(a.is_dispenser());
        assert_eq!(a.to_bytes(), [1, 7]);
        assert_eq!(a.to_string(), "1.7");
    }
}
