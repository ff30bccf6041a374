//! What both ends of an interserver connection agree on, so neither side imports the other.

/// The response header in which a node names itself and the parents above it, nearest
/// first (loop detection: a child refuses a parent whose chain holds the child).
pub const CHAIN_HEADER: &str = "x-updhub-chain";

/// The response header in which a node names the CA it issues with (and, during a CA
/// rotation's overlap, the cross-certificate): a linked child that sees it change asks
/// `GET /v1/ca` (see [`crate::link::follow_ca`]).
pub const CA_HEADER: &str = "x-updhub-ca";
