//! The OpenSSL verifier library (openssl-verifier/, `libaksara_openssl.so`) opened on the
//! first check that needs it, once per process: `dlopen` by absolute path, next to the
//! executable (where `cargo build` puts both), in `deps/` beside it (where `cargo test`
//! leaves it: cargo copies a library up beside the binaries only when it is built by name),
//! then `<exe dir>/../lib/aksara/` (where install.sh puts it). Never from the current folder
//! or an environment variable: a library found there would decide which certificates aksara
//! trusts. A library that is missing, cannot be
//! opened, or speaks another ABI version is a [`Rejection`] of its own reason, with the fix,
//! never a verdict on the certificate.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Rejection;
use super::wire::{ABI_VERSION, ChainRequest, ChainVerdict, LIBRARY_FILE, SignatureRequest};
use crate::connect::CertReason;

type AbiFn = unsafe extern "C" fn() -> u32;
type CallFn = unsafe extern "C" fn(*const u8, usize, *mut *mut u8, *mut usize) -> i32;
type FreeFn = unsafe extern "C" fn(*mut u8, usize);

/// The opened library's entry points (it stays open for the life of the process).
pub struct Library {
    path: PathBuf,
    verify_chain: CallFn,
    check_signature: CallFn,
    free: FreeFn,
}

/// The library, opened on the first call (and the same answer for every later one).
pub fn get() -> Result<&'static Library, Rejection> {
    static LIBRARY: OnceLock<Result<Library, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(open_first)
        .as_ref()
        .map_err(|why| Rejection {
            reason: CertReason::VerifierMissing,
            message: why.clone(),
            cert: None,
        })
}

impl Library {
    pub fn verify_chain(&self, request: &ChainRequest) -> Result<ChainVerdict, Rejection> {
        self.call(self.verify_chain, request)
    }

    pub fn check_signature(
        &self,
        request: &SignatureRequest,
    ) -> Result<super::wire::SignatureVerdict, Rejection> {
        self.call(self.check_signature, request)
    }

    fn call<Answer: DeserializeOwned>(
        &self,
        entry: CallFn,
        request: &impl Serialize,
    ) -> Result<Answer, Rejection> {
        let failed = |why: String| Rejection {
            // Not OpenSSL's verdict: the check did not run to its end.
            reason: CertReason::VerifierMissing,
            message: format!("aksara's verifier library {} {why}", self.path.display()),
            cert: None,
        };
        let bytes = serde_json::to_vec(request).map_err(|e| failed(e.to_string()))?;
        let mut answer: *mut u8 = std::ptr::null_mut();
        let mut answer_len = 0usize;
        // SAFETY: an entry point of a library whose ABI version matched; the request is
        // `bytes.len()` readable bytes and both out pointers are writable.
        let status = unsafe { entry(bytes.as_ptr(), bytes.len(), &mut answer, &mut answer_len) };
        if status != 0 || answer.is_null() {
            return Err(failed(format!("failed (status {status})")));
        }
        // SAFETY: the library wrote `answer_len` bytes at `answer`; freed once, just below.
        let decoded = serde_json::from_slice(unsafe {
            std::slice::from_raw_parts(answer.cast_const(), answer_len)
        });
        // SAFETY: the buffer this call was given, freed once by the library that made it.
        unsafe { (self.free)(answer, answer_len) };
        decoded.map_err(|e| failed(format!("gave an unreadable answer: {e}")))
    }
}

/// Where the library may be, in order: next to the executable, cargo's `deps/`, then
/// `../lib/aksara/`.
fn candidates(exe: &Path) -> Vec<PathBuf> {
    let Some(dir) = exe.parent() else {
        return Vec::new();
    };
    vec![
        dir.join(LIBRARY_FILE),
        dir.join("deps").join(LIBRARY_FILE),
        dir.join("../lib/aksara").join(LIBRARY_FILE),
    ]
}

fn open_first() -> Result<Library, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("aksara could not find its own executable to locate the certificate verifier library {LIBRARY_FILE}: {e}"))?;
    let places = candidates(&exe);
    match places.iter().find(|path| path.exists()) {
        Some(path) => open(path),
        None => Err(format!(
            "aksara's verifier library {LIBRARY_FILE} is not installed next to aksara (looked for {})",
            places
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn open(path: &Path) -> Result<Library, String> {
    let shown = path.display();
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("the verifier library's path {shown} contains a NUL byte"))?;
    // SAFETY: an absolute path; RTLD_LOCAL keeps OpenSSL's symbols out of aksara's namespace.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "aksara's verifier library {shown} could not be opened: {}",
            dl_error()
        ));
    }
    let symbol = |name: &CStr| {
        // SAFETY: a handle dlopen returned, never closed.
        let found = unsafe { libc::dlsym(handle, name.as_ptr()) };
        if found.is_null() {
            Err(format!(
                "aksara's verifier library {shown} has no {}: it is from another aksara version",
                name.to_string_lossy()
            ))
        } else {
            Ok(found)
        }
    };
    // SAFETY: each symbol has the type the library's lib.rs gives it, for this ABI version,
    // which is checked first.
    unsafe {
        let abi: AbiFn = std::mem::transmute(symbol(c"aksara_openssl_abi")?);
        let found = abi();
        if found != ABI_VERSION {
            return Err(format!(
                "aksara's verifier library {shown} speaks version {found} of its interface and this aksara version {ABI_VERSION}: it is from another aksara version"
            ));
        }
        Ok(Library {
            path: path.to_path_buf(),
            verify_chain: std::mem::transmute::<*mut libc::c_void, CallFn>(symbol(
                c"aksara_openssl_verify_chain",
            )?),
            check_signature: std::mem::transmute::<*mut libc::c_void, CallFn>(symbol(
                c"aksara_openssl_check_signature",
            )?),
            free: std::mem::transmute::<*mut libc::c_void, FreeFn>(symbol(c"aksara_openssl_free")?),
        })
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "(no reason given)".to_string()
    } else {
        // SAFETY: non-NULL, NUL-terminated, read at once.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_is_looked_for_only_beside_the_executable_and_in_lib_aksara() {
        let places = candidates(Path::new("/opt/x/bin/aksara"));
        assert_eq!(
            places,
            [
                PathBuf::from("/opt/x/bin/libaksara_openssl.so"),
                PathBuf::from("/opt/x/bin/deps/libaksara_openssl.so"),
                PathBuf::from("/opt/x/bin/../lib/aksara/libaksara_openssl.so"),
            ]
        );
    }
}
