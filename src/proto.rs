//! What both ends of an interserver connection agree on, so neither side imports the other.

/// The response header in which a node names itself and the parents above it, nearest
/// first (loop detection: a child refuses a parent whose chain holds the child).
pub const CHAIN_HEADER: &str = "x-updhub-chain";
