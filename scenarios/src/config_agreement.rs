//! State machine safety of the config table (`config-tables-agree`): one checker for the
//! invariant that no two backends of a cluster ever apply different config tables at the
//! same log index. It catches a replica that applied a damaged record, a divergent log,
//! or a non-deterministic apply, whatever caused it.

use std::collections::BTreeMap;

use crate::oracle::Violation;

/// The config states backends were seen to have applied, per cluster and log index: a
/// digest of the state (see `cluster::config_table::Applied::digest`, which binds the
/// state, its membership and the index) and the first backend seen with it. Only digests are kept (a
/// config table holds wrapped DEKs and KMS credentials, which a violation must not show).
#[derive(Debug, Default)]
pub struct AppliedStates(BTreeMap<(usize, u64), ([u8; 16], u64)>);

/// Where a backend's state machine stands: the log index it applied up to and the digest
/// of its state there (`None`: nothing applied yet).
pub type AppliedAt = Option<(u64, [u8; 16])>;

/// State machine safety (`config-tables-agree`): no two backends of a cluster ever
/// applied different config states at the same log index. `applied` holds, per backend,
/// the index its state machine reached and the digest of its state there (`None`:
/// nothing applied yet).
/// Checked after every step against all seen before (`seen`), so it also catches a backend
/// that applied a damaged entry: its state parts from the others' at that index.
/// Returns how many backends were judged against another's state at the same index.
pub fn config_tables_agree(
    seen: &mut AppliedStates,
    cluster: usize,
    applied: &[(u64, AppliedAt)],
) -> Result<usize, Violation> {
    let mut compared = 0;
    for (node, at) in applied {
        let Some((index, digest)) = at else {
            continue;
        };
        match seen.0.get(&(cluster, *index)) {
            Some((other, first)) if other != digest => {
                return Err(Violation {
                    oracle: "config-tables-agree",
                    detail: format!(
                        "backend{node} applied a different config table at log index {index} \
                         than backend{first} did"
                    ),
                })
            }
            Some((_, first)) => compared += usize::from(first != node),
            None => {
                seen.0.insert((cluster, *index), (*digest, *node));
            }
        }
    }
    Ok(compared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_config_tables_at_one_index_must_agree() {
        let mut seen = AppliedStates::default();
        let (a, b) = ([1u8; 16], [2u8; 16]);
        // Backends 1 and 2 at index 5 agree; backend 3 lags at 4 with another state.
        assert_eq!(
            config_tables_agree(
                &mut seen,
                0,
                &[(1, Some((5, a))), (2, Some((5, a))), (3, Some((4, b)))]
            ),
            Ok(1)
        );
        // Another cluster keeps its own log: index 5 there is another entry.
        config_tables_agree(&mut seen, 1, &[(101, Some((5, b)))]).unwrap();
        // Nothing applied yet is not judged.
        config_tables_agree(&mut seen, 0, &[(3, None)]).unwrap();
        // Later, backend 3 reaches index 5 with a state of its own (an entry applied
        // from a damaged record, say): caught, naming backends, never contents.
        let v = config_tables_agree(&mut seen, 0, &[(3, Some((5, b)))]).unwrap_err();
        assert_eq!(v.oracle, "config-tables-agree");
        assert_eq!(
            v.detail,
            "backend3 applied a different config table at log index 5 than backend1 did"
        );
    }
}
