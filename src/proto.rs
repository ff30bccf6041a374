//! What both ends of an interserver connection agree on, so neither side imports the other.

/// The response header in which a node names itself and the parents above it, nearest
/// first (loop detection: a child refuses a parent whose chain holds the child).
pub const CHAIN_HEADER: &str = "x-updhub-chain";

/// The response header in which a node names the CA it issues with (and, during a CA
/// rotation's overlap, the cross-certificate): a linked child that sees it change asks
/// `GET /v1/ca` (see [`crate::link::follow_ca`]).
pub const CA_HEADER: &str = "x-updhub-ca";

/// The response header of `GET /v1/published` carrying the node's staged version: the
/// signed published document (compact JSON, as the body's) of a version the node holds in
/// full beside its active one, which the body still is. A child stages it (fetches and
/// verifies it without switching) and reports it staged; it switches when the body names it.
/// Older children ignore the header and follow the body, as before.
pub const STAGED_HEADER: &str = "x-updhub-staged";

/// The response header by which `GET /v1/published` says it long-polls, with the longest
/// wait it grants in seconds. A child that does not see it (an older parent) sleeps
/// between polls instead.
pub const LONG_POLL_HEADER: &str = "x-updhub-long-poll";

/// The longest `wait` a long-poll is held, in seconds: under the client's and the server's
/// stall timeouts (30 s), so an idle long-poll is never taken for a dead connection.
pub const MAX_WAIT_SECS: u64 = 25;

/// The long-poll's query: `GET /v1/published?wait=SECONDS&known=ACTIVE&staged=STAGED`
/// answers at once when the node's active version number differs from `known` or its
/// staged number from `staged` (0: none), else when either moves, or after `wait` seconds
/// (at most [`MAX_WAIT_SECS`]) with the same answer. Without `wait` it answers at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Poll {
    /// Seconds to hold the request while nothing moves.
    #[serde(default)]
    pub wait: u64,
    /// The active version number the child saw last.
    #[serde(default)]
    pub known: u64,
    /// The staged version number the child saw last (0: none).
    #[serde(default)]
    pub staged: u64,
}

impl Poll {
    /// Read a query string; unknown keys are ignored, a bad number is an error.
    ///
    /// # Errors
    /// A value that is not a number, named.
    pub fn parse(query: Option<&str>) -> Result<Poll, String> {
        let mut p = Poll::default();
        for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "wait" => &mut p.wait,
                "known" => &mut p.known,
                "staged" => &mut p.staged,
                _ => continue,
            };
            *slot = v.parse().map_err(|_| {
                format!(
                    "query {k}={v:?} is not a whole number; send e.g. ?wait=25&known=3&staged=4"
                )
            })?;
        }
        p.wait = p.wait.min(MAX_WAIT_SECS);
        Ok(p)
    }

    /// The query string for this poll.
    pub fn query(&self) -> String {
        format!(
            "wait={}&known={}&staged={}",
            self.wait, self.known, self.staged
        )
    }
}

/// What a child says of staging in its report (`POST /v1/report`, beside `root` and
/// `number`, the version it holds active). A parent that does not know these fields
/// ignores them; a report without them comes from a child that does not stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StageReport {
    /// Always true from a child that stages.
    #[serde(default)]
    pub two_phase: bool,
    /// The number of the version it holds staged.
    #[serde(default)]
    pub staged_number: Option<u64>,
    /// Its root.
    #[serde(default)]
    pub staged_root: Option<crate::id::Root>,
    /// Why it could not stage the version its parent staged.
    #[serde(default)]
    pub stage_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_poll_query_is_read_bounded_and_written_back() {
        assert_eq!(Poll::parse(None).unwrap(), Poll::default());
        let p = Poll::parse(Some("wait=600&known=3&staged=4&other=x")).unwrap();
        assert_eq!(
            p,
            Poll {
                wait: MAX_WAIT_SECS,
                known: 3,
                staged: 4
            }
        );
        assert_eq!(Poll::parse(Some(&p.query())).unwrap(), p);
        let e = Poll::parse(Some("wait=soon")).unwrap_err();
        assert!(e.contains("wait=\"soon\"") && e.contains("?wait=25"), "{e}");
    }
}
