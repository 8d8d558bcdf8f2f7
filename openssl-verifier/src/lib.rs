//! aksara's OpenSSL verifier as a shared library: the checks that need the system's OpenSSL
//! (the chain under verify-ca/verify-full, a handshake signature ring refuses), behind a
//! narrow C ABI that aksara opens with `dlopen` only when one of them is needed. Linked into
//! aksara, libssl and libcrypto cost every run ~0.8 ms of ld.so relocations at exec, also on
//! the runs (sockets, TCP, `sslmode=require`) that never call OpenSSL.
//!
//! The ABI: [`aksara_openssl_abi`] returns [`wire::ABI_VERSION`]; each call takes a JSON
//! request (bytes) and hands back a JSON answer in a buffer the caller frees with
//! [`aksara_openssl_free`]. Nothing unwinds across it: every call runs under `catch_unwind`
//! (and the release profile aborts on panic anyway).

pub mod chain;
mod names;
pub mod signature;
pub mod wire;

use std::panic::{AssertUnwindSafe, catch_unwind};

/// A call's status: the answer is in the out buffer.
pub const STATUS_OK: i32 = 0;
/// The request was not the JSON this version reads (no answer).
pub const STATUS_BAD_REQUEST: i32 = 1;
/// The check panicked (no answer).
pub const STATUS_PANICKED: i32 = 2;

/// The ABI version this library speaks.
#[unsafe(no_mangle)]
pub extern "C" fn aksara_openssl_abi() -> u32 {
    wire::ABI_VERSION
}

/// Verify a chain: request a [`wire::ChainRequest`], answer a [`wire::ChainVerdict`].
///
/// # Safety
/// `request` points to `request_len` readable bytes; `answer` and `answer_len` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aksara_openssl_verify_chain(
    request: *const u8,
    request_len: usize,
    answer: *mut *mut u8,
    answer_len: *mut usize,
) -> i32 {
    // SAFETY: the caller's contract, passed on.
    unsafe { serve(request, request_len, answer, answer_len, chain::verify) }
}

/// Check a handshake signature: request a [`wire::SignatureRequest`], answer a
/// [`wire::SignatureVerdict`].
///
/// # Safety
/// As [`aksara_openssl_verify_chain`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aksara_openssl_check_signature(
    request: *const u8,
    request_len: usize,
    answer: *mut *mut u8,
    answer_len: *mut usize,
) -> i32 {
    // SAFETY: the caller's contract, passed on.
    unsafe { serve(request, request_len, answer, answer_len, signature::check) }
}

/// Free an answer buffer this library handed out.
///
/// # Safety
/// `answer` and `answer_len` are what one call wrote, and are freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aksara_openssl_free(answer: *mut u8, answer_len: usize) {
    if answer.is_null() {
        return;
    }
    // SAFETY: made by `Box::<[u8]>::into_raw` in `serve` with this length.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(answer, answer_len)) });
}

/// Read the request, run the check, write the answer; a panic becomes a status.
unsafe fn serve<Request, Answer>(
    request: *const u8,
    request_len: usize,
    answer: *mut *mut u8,
    answer_len: *mut usize,
    check: fn(Request) -> Answer,
) -> i32
where
    Request: serde::de::DeserializeOwned,
    Answer: serde::Serialize,
{
    if request.is_null() || answer.is_null() || answer_len.is_null() {
        return STATUS_BAD_REQUEST;
    }
    // SAFETY: the caller's contract: `request_len` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(request, request_len) };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let request: Request = serde_json::from_slice(bytes).ok()?;
        serde_json::to_vec(&check(request)).ok()
    }));
    let encoded = match outcome {
        Ok(Some(encoded)) => encoded,
        Ok(None) => return STATUS_BAD_REQUEST,
        Err(_) => return STATUS_PANICKED,
    };
    let boxed = encoded.into_boxed_slice();
    // SAFETY: the caller's contract: both are writable.
    unsafe {
        *answer_len = boxed.len();
        *answer = Box::into_raw(boxed).cast::<u8>();
    }
    STATUS_OK
}
