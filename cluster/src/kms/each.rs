//! Unwrapping many DEKs so that one bad item does not hold back the good ones.
//!
//! A batched unwrap fails as a whole when one of its items fails (a Vault batch answers
//! 400 for a DEK wrapped by a trimmed version, a KMIP batch stops at the first failed
//! item). Startup unwrap and the proof `security kms set` runs both need each item's
//! own answer, so a batch that fails for a reason that may be one item's is split in
//! halves until the items that unwrap are through. A failure of the KMS as a whole
//! (unreachable, sealed, credentials refused) is not split: every item would fail the same
//! way, and each try could cost a timeout.

use super::{KmsConnector, KmsError, WrappedDek};
use crate::dek::Dek;

impl KmsError {
    /// Whether this failure may belong to one item of a batch rather than to the KMS or
    /// the credentials as a whole: Vault's answer to a bad request (a ciphertext of a
    /// retired version, or of another key), or a KMIP item's failure other than the
    /// server's General Failure.
    pub fn may_be_one_items(&self) -> bool {
        match self {
            KmsError::Refused { status, .. } => *status == 400,
            KmsError::KmipFailure { reason, .. } => reason != "General Failure",
            KmsError::Unreachable(_)
            | KmsError::Timeout(_)
            | KmsError::Sealed
            | KmsError::Auth(_)
            | KmsError::Malformed(_)
            | KmsError::ProbeMismatch
            | KmsError::Unsupported(_) => false,
        }
    }
}

/// Unwraps every item of `wrapped` (all wrapped by `connector`'s key), in batches of at
/// most `batch`, and answers each item's own result in order. A batch that fails with an
/// error that may be one item's is split in halves, down to single items; one that fails
/// for the KMS as a whole ends the work, and that error is every item's left.
pub async fn unwrap_each(
    connector: &dyn KmsConnector,
    wrapped: &[WrappedDek],
    batch: usize,
) -> Vec<Result<Dek, KmsError>> {
    let mut results: Vec<Option<Result<Dek, KmsError>>> = vec![None; wrapped.len()];
    // Ranges still to ask, the next on top: in item order, so the KMS sees the same
    // requests in the same order every run.
    let mut todo: Vec<std::ops::Range<usize>> = (0..wrapped.len())
        .step_by(batch.max(1))
        .map(|start| start..(start + batch.max(1)).min(wrapped.len()))
        .rev()
        .collect();
    while let Some(range) = todo.pop() {
        let answer = match connector.unwrap(&wrapped[range.clone()]).await {
            Ok(deks) if deks.len() == range.len() => Ok(deks),
            Ok(deks) => Err(KmsError::Malformed(format!(
                "{} keys unwrapped for {} asked",
                deks.len(),
                range.len()
            ))),
            Err(e) => Err(e),
        };
        match answer {
            Ok(deks) => {
                for (slot, dek) in results[range].iter_mut().zip(deks) {
                    *slot = Some(Ok(dek));
                }
            }
            Err(e) if range.len() > 1 && e.may_be_one_items() => {
                let mid = range.start + range.len() / 2;
                todo.push(mid..range.end);
                todo.push(range.start..mid);
            }
            Err(e) => {
                let whole_kms = !e.may_be_one_items();
                for slot in &mut results[range] {
                    *slot = Some(Err(e.clone()));
                }
                if whole_kms {
                    for range in todo.drain(..) {
                        for slot in &mut results[range] {
                            *slot = Some(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(KmsError::Malformed("an item was never asked".into()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::net::BoxFuture;

    /// Unwraps every item whose ciphertext is not `bad`; a batch holding a bad item fails
    /// as a whole with `error`. Counts the calls.
    struct OneBad {
        error: KmsError,
        calls: Mutex<usize>,
    }

    fn item(name: &str) -> WrappedDek {
        WrappedDek {
            ciphertext: name.into(),
            key_version: 1,
        }
    }

    impl KmsConnector for OneBad {
        fn probe(&self) -> BoxFuture<'_, Result<(), KmsError>> {
            Box::pin(async { Ok(()) })
        }
        fn wrap<'a>(&'a self, _: &'a [Dek]) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn unwrap<'a>(
            &'a self,
            wrapped: &'a [WrappedDek],
        ) -> BoxFuture<'a, Result<Vec<Dek>, KmsError>> {
            *self.calls.lock().unwrap() += 1;
            let answer = if wrapped.iter().any(|w| w.ciphertext == "bad") {
                Err(self.error.clone())
            } else {
                Ok(wrapped
                    .iter()
                    .map(|w| Dek::from_bytes(&[w.ciphertext.len() as u8; 32]).unwrap())
                    .collect())
            };
            Box::pin(async move { answer })
        }
        fn rewrap<'a>(
            &'a self,
            _: &'a [WrappedDek],
        ) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    fn run(error: KmsError, items: &[&str], batch: usize) -> (Vec<bool>, usize) {
        let connector = OneBad {
            error,
            calls: Mutex::new(0),
        };
        let wrapped: Vec<WrappedDek> = items.iter().map(|n| item(n)).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let results = rt.block_on(unwrap_each(&connector, &wrapped, batch));
        let calls = *connector.calls.lock().unwrap();
        (results.iter().map(Result::is_ok).collect(), calls)
    }

    fn too_old() -> KmsError {
        KmsError::Refused {
            status: 400,
            message: "ciphertext or signature version is disallowed by policy (too old)".into(),
        }
    }

    #[test]
    fn one_bad_item_does_not_fail_its_batch() {
        let (ok, _) = run(too_old(), &["a", "bb", "bad", "ccc", "dd"], 100);
        assert_eq!(ok, [true, true, false, true, true]);
        // Across batches too: the batch without the bad item is untouched.
        let (ok, calls) = run(too_old(), &["a", "bad", "c", "d", "e"], 2);
        assert_eq!(ok, [true, false, true, true, true]);
        assert_eq!(calls, 5, "[a,bad] split in two, then [c,d] and [e]");
    }

    #[test]
    fn a_kms_wide_failure_is_not_split() {
        let (ok, calls) = run(KmsError::Sealed, &["a", "bad", "c", "d", "e"], 2);
        assert_eq!(ok, [false; 5]);
        assert_eq!(
            calls, 1,
            "[a,bad] failed as a whole KMS would: nothing asked after it"
        );
    }

    #[test]
    fn kmip_general_failure_is_the_servers() {
        let general = KmsError::KmipFailure {
            operation: "Decrypt".into(),
            reason: "General Failure".into(),
            message: "down".into(),
        };
        assert!(!general.may_be_one_items());
        let not_found = KmsError::KmipFailure {
            operation: "Decrypt".into(),
            reason: "Item Not Found".into(),
            message: "no such key".into(),
        };
        assert!(not_found.may_be_one_items());
        assert!(too_old().may_be_one_items());
        assert!(!KmsError::Auth("permission denied".into()).may_be_one_items());
    }
}
