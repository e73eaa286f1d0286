//! One SQLite transaction around several store calls.
//!
//! Writes a Durable Object makes without an `await` in between commit
//! together, but a storage error halfway through a handler does not undo the
//! writes made before it: the handler returns an error and the earlier writes
//! still commit. `storage.transactionSync(callback)` rolls back everything
//! the callback wrote when it throws. workers-rs 0.8.7 does not bind it, so
//! [`transaction`] calls it on the raw storage object with a closure that
//! borrows the work (it runs before `transactionSync` returns).

use js_sys::{Function, Reflect};
use wasm_bindgen::closure::ScopedClosure;
use wasm_bindgen::{JsCast, JsValue};
use workmesh::ConnectError;

/// Runs `work` in one storage transaction: when it fails, none of its writes
/// stay, and its error is returned; when the transaction itself fails (or
/// cannot start), an `internal` error says so.
pub fn transaction<T>(
    storage: &worker::Storage,
    work: impl FnOnce() -> Result<T, ConnectError>,
) -> Result<T, ConnectError> {
    let raw: &JsValue = storage.as_raw();
    let transaction_sync = Reflect::get(raw, &JsValue::from_str("transactionSync"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or_else(|| {
            ConnectError::internal("registry storage: transactionSync is not available")
        })?;
    let mut work = Some(work);
    let mut ran: Option<Result<T, ConnectError>> = None;
    let mut callback = || -> Result<(), JsValue> {
        let result = match work.take() {
            Some(work) => work(),
            None => Err(ConnectError::internal(
                "registry storage: transaction callback called twice",
            )),
        };
        let failed = result.is_err();
        ran = Some(result);
        // Throwing is what makes transactionSync roll back.
        if failed {
            Err(JsValue::from_str("rolled back"))
        } else {
            Ok(())
        }
    };
    let closure = ScopedClosure::<dyn FnMut() -> Result<(), JsValue>>::borrow_mut(&mut callback);
    let thrown = transaction_sync
        .call1(raw, closure.as_ref())
        .map(|_| ())
        .map_err(|e| {
            e.as_string()
                .or_else(|| {
                    e.dyn_ref::<js_sys::Error>()
                        .map(|e| String::from(e.message()))
                })
                .unwrap_or_else(|| format!("{e:?}"))
        });
    drop(closure);
    settle(ran, thrown)
}

/// The outcome of a transaction from what the work returned (`None`: it did
/// not run) and whether `transactionSync` threw.
fn settle<T>(
    ran: Option<Result<T, ConnectError>>,
    thrown: Result<(), String>,
) -> Result<T, ConnectError> {
    match (ran, thrown) {
        // The work's own error: it was rolled back.
        (Some(Err(error)), _) => Err(error),
        (Some(Ok(value)), Ok(())) => Ok(value),
        // The work succeeded but the commit failed.
        (Some(Ok(_)), Err(e)) => Err(ConnectError::internal(format!(
            "registry storage: transaction failed: {e}"
        ))),
        (None, Err(e)) => Err(ConnectError::internal(format!(
            "registry storage: transaction failed: {e}"
        ))),
        (None, Ok(())) => Err(ConnectError::internal(
            "registry storage: transaction did not run",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workmesh::Code;

    #[test]
    fn the_work_decides_unless_the_transaction_fails() {
        assert_eq!(settle(Some(Ok(7)), Ok(())).ok(), Some(7));

        let own = settle::<()>(Some(Err(ConnectError::not_found("gone"))), Err("x".into()));
        let own = own.err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!((own.code, own.message.as_str()), (Code::NotFound, "gone"));

        let commit = settle(Some(Ok(7)), Err("disk full".into()));
        let commit = commit.err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(commit.code, Code::Internal);
        assert!(commit.message.contains("disk full"), "{}", commit.message);

        for thrown in [Ok(()), Err("no".to_string())] {
            let error = settle::<()>(None, thrown).err();
            assert_eq!(error.map(|e| e.code), Some(Code::Internal));
        }
    }
}
